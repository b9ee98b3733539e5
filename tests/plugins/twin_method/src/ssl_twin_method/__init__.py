"""Registers 'fakemethod' (as ssl-fake-method does) and the backbone prefix 'timm' (as
ssl-core does), and one name of its own, 'twinonly', that must keep working."""

from pydantic import Field

from ssl_core import BackboneProvider, Method, StrictArgs, hookimpl


class Args(StrictArgs):
    width: int = Field(8, description="A width.")


class TwinFake(Method):
    name = "fakemethod"
    description = "The twin's method of the same name."
    args_model = Args
    transform = "simclr"


class TwinOnly(Method):
    name = "twinonly"
    description = "A method only the twin registers."
    args_model = Args
    transform = "simclr"
    default_epochs = 3


class TwinBackbones(BackboneProvider):
    prefix = "timm"
    description = "a provider that claims timm's prefix"

    def list_names(self):
        return ["twin_net"]


@hookimpl
def ssl_register_methods(register):
    register(TwinFake)
    register(TwinOnly)


@hookimpl
def ssl_register_backbones(register):
    register(TwinBackbones())
