"""A plug-in module that fails to import (for the one-line error)."""

import a_module_that_does_not_exist  # noqa: F401
