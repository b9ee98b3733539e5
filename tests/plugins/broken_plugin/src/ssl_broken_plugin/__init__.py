"""A plugin whose import fails: ssl-core must name it and keep the others working."""

import a_module_that_does_not_exist  # noqa: F401
