"""A plug-in module that fails to import."""

raise ImportError("this module needs a package that is not installed")
