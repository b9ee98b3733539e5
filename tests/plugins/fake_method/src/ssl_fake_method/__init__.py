"""A third-party method plugin, as someone outside the project would write it."""

from pydantic import Field

from ssl_core import Method, StrictArgs, hookimpl


class FakeArgs(StrictArgs):
    sharpness: float = Field(3.5, description="How sharp the fake method is.")
    layers: int = Field(4, description="How many layers the fake head has.")
    fail_on_rank: int = Field(-1, description="Raise in the process with this rank (tests).")


class FakeMethod(Method):
    name = "fakemethod"
    description = "A method that exists only in the tests."
    args_model = FakeArgs
    transform = "simclr"
    transform_defaults = {"image_size": [96, 96]}
    default_epochs = 7

    def build(self, backbone):
        from ssl_fake_method.model import FakeModel

        return FakeModel(backbone, self.args.fail_on_rank)


@hookimpl
def ssl_register_methods(register):
    register(FakeMethod)
