"""Model families by name: where `--family vae|ae|dae|sae|lvae|...` becomes a model class.

A family's module registers its class with `@register_family("name")`; `models/__init__.py` imports the
project's own families. A family kept outside the project (a file of your own) is found by listing its
module in `VAE_FAMILY_MODULES` (comma-separated, importable from the current folder or PYTHONPATH);
run folders record the module, so they load without the variable.
"""

import importlib
import os

FAMILIES = {}


def register_family(name):
    """Class decorator: make the model class available as `--family name`."""

    def register(cls):
        FAMILIES[name] = cls
        return cls

    return register


def load_family_modules(environ=os.environ):
    """Import the modules listed in VAE_FAMILY_MODULES, so their families register themselves."""
    for module in filter(None, (m.strip() for m in environ.get("VAE_FAMILY_MODULES", "").split(","))):
        try:
            importlib.import_module(module)
        except ImportError as e:
            raise ValueError(f"VAE_FAMILY_MODULES names {module!r}, which cannot be imported ({e})") from None


def family_names():
    """Every registered family, the plug-in ones included."""
    load_family_modules()
    return tuple(FAMILIES)


def family_class(name):
    """The model class of family `name`, or a ValueError that lists the families."""
    if name not in FAMILIES:
        load_family_modules()
    if name not in FAMILIES:
        raise ValueError(f"family must be one of {', '.join(FAMILIES)}; got {name!r} (a family of your own: "
                         "list its module in VAE_FAMILY_MODULES)")
    return FAMILIES[name]
