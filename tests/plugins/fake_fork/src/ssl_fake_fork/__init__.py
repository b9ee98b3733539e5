"""Uses the entry-point name 'fake', as ssl-fake-method does, with a method of its own."""

from pydantic import Field

from ssl_core import Method, StrictArgs, hookimpl


class Args(StrictArgs):
    width: int = Field(8, description="A width.")


class ForkMethod(Method):
    name = "forkmethod"
    description = "The fork's own method."
    args_model = Args
    transform = "simclr"


@hookimpl
def ssl_register_methods(register):
    register(ForkMethod)
