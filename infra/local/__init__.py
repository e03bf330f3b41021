"""The local stack: emulator, provisioning from the declarations, the local SageMaker, every service."""
