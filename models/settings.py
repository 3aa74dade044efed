"""Settings as data: every config dataclass declares each setting as one field made by `setting`, whose
metadata holds its help text and its allowed values or `Check`. The dataclass validates itself with
them (`check_fields`) and `utils/cli.py` builds the command-line flag from the same field, so adding a
setting is one line. Imports nothing, so every module can use it.
"""

import dataclasses
from dataclasses import dataclass, field
from fractions import Fraction


@dataclass(frozen=True)
class Check:
    """A test a setting's value must pass, and how to say it (`must be a positive integer`)."""

    wording: str
    test: object

    def __call__(self, value):
        values = value if isinstance(value, tuple) else (value,)
        return all(self.test(v) for v in values)


POSITIVE = Check("a positive number", lambda v: v > 0)
NON_NEGATIVE = Check("a number >= 0", lambda v: v >= 0)
POSITIVE_INT = Check("a positive integer", lambda v: v > 0)
NON_NEGATIVE_INT = Check("an integer >= 0", lambda v: v >= 0)
RATE = Check("a rate in [0, 1)", lambda v: 0 <= v < 1)
FRACTION = Check("a fraction in [0, 1]", lambda v: 0 <= v <= 1)


def setting(default, help, choices=None, check=None, flag=True):
    """A dataclass field with its help, allowed values (or a function giving them, for registries that grow)
    or `Check` in its metadata; `flag=False` keeps it off the command line (e.g. the input shape, which the
    data decide)."""
    return field(default=default, metadata={"help": help, "choices": choices, "check": check, "flag": flag})


def choices_of(f):
    """The allowed values of a settings field, or None."""
    choices = f.metadata.get("choices")
    return tuple(choices()) if callable(choices) else choices


def check_choice(name, value, allowed):
    """A ValueError naming the setting and its allowed values unless `value` is one of them."""
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(map(str, allowed))}; got {value!r}")


def check_fields(settings):
    """Normalise list values to tuples and raise a ValueError naming the first setting whose value breaks
    its choices or its check."""
    for f in dataclasses.fields(settings):
        value = getattr(settings, f.name)
        if isinstance(value, list):
            value = tuple(value)
            object.__setattr__(settings, f.name, value)
        if value is None:
            continue
        if f.metadata.get("choices"):
            check_choice(f.name, value, choices_of(f))
        check = f.metadata.get("check")
        if check and not check(value):
            what = f"every value of {f.name}" if isinstance(value, tuple) else f.name
            raise ValueError(f"{what} must be {check.wording}; got {value}")


def parse_number(text, kind=float):
    """`0.4`, `3/7` or `5` as `kind`: fractions are allowed wherever a float is."""
    value = Fraction(text) if kind is float else int(text)
    return float(value) if kind is float else value


def from_fields(cls, values, what):
    """`cls(**values)`, with unknown keys named in one ValueError."""
    unknown = set(values) - {f.name for f in dataclasses.fields(cls)}
    if unknown:
        raise ValueError(f"unknown {what} settings: {', '.join(sorted(unknown))}")
    return cls(**values)


def plain(settings):
    """A settings dataclass as JSON-ready values (tuples as lists)."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(settings).items()}
