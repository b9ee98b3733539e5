"""A plugin with a misspelled hook: without a check it would load and register nothing."""

from pydantic import Field

from ssl_core import Method, StrictArgs, hookimpl


class MisspeltArgs(StrictArgs):
    width: int = Field(8, description="A width.")


class Misspelt(Method):
    name = "misspelt"
    description = "Never registered: its hook's name lacks an 's'."
    args_model = MisspeltArgs
    transform = "simclr"


@hookimpl
def ssl_register_method(register):
    register(Misspelt)
