"""The DreamBooth extension's ``dreambooth.shared``: where its models live."""

dreambooth_models_path = "models/dreambooth"
