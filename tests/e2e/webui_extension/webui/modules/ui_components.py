"""``modules.ui_components``: the WebUI's own layout components."""

import gradio as gr


class FormRow(gr.Row):
    pass


class FormColumn(gr.Column):
    pass


class FormGroup(gr.Group):
    pass


class ToolButton(gr.Button):
    pass


class FormHTML(gr.HTML):
    pass
