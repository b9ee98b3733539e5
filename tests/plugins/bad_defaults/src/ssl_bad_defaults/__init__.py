"""Two methods with the plugin author's mistakes: a misspelled key in transform_defaults,
and a transform name no plugin registers. Both are the author's to fix, not the user's."""

from pydantic import Field

from ssl_core import Method, StrictArgs, hookimpl


class Args(StrictArgs):
    width: int = Field(8, description="A width.")


class TypoDefaults(Method):
    name = "typodefaults"
    description = "Its transform defaults misspell image_size."
    args_model = Args
    transform = "simclr"
    transform_defaults = {"image_sise": 64}


class LostTransform(Method):
    name = "losttransform"
    description = "Names a transform nobody registers."
    args_model = Args
    transform = "simclear"


@hookimpl
def ssl_register_methods(register):
    register(TypoDefaults)
    register(LostTransform)
