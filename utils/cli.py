"""Command-line helpers: an argparse parser whose errors are one line, and flags derived from the settings
dataclasses (models/settings.py), so that a setting's name, type, default, choices and help live in one
place: its field."""

import argparse
import dataclasses
import sys
import types
import typing

from models.settings import NON_NEGATIVE_INT, POSITIVE_INT, choices_of, parse_number


class OneLineParser(argparse.ArgumentParser):
    """ArgumentParser that reports a bad flag in one line (no usage block) and exits 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _value_type(annotation):
    """(element type, whether a comma-separated list) of a settings field's annotation: `tuple` is a list of
    ints, `tuple[str, ...]` a list of names."""
    if isinstance(annotation, types.UnionType):
        annotation = next(a for a in annotation.__args__ if a is not type(None))
    if annotation is tuple or typing.get_origin(annotation) is tuple:
        return (typing.get_args(annotation) or (int,))[0], True
    return annotation, False


def _parser(kind, is_list, check):
    """Text -> value of `kind` (a list of them for a tuple field), checked by the field's `Check`."""
    wording = check.wording if check else {int: "an integer", float: "a number"}.get(kind, "names")

    def parse(text):
        try:
            values = [parse_number(v, kind) if kind in (int, float) else v.strip()
                      for v in (text.split(",") if is_list else [text]) if str(v).strip()]
        except (ValueError, ZeroDivisionError):
            values = []
        value = tuple(values) if is_list else (values[0] if values else None)
        if not values or (check and not check(value)):
            raise argparse.ArgumentTypeError(f"must be {'comma-separated values, each ' if is_list else ''}{wording}, "
                                             f"got {text!r}")
        return value

    return parse


positive_int = _parser(int, False, POSITIVE_INT)
non_negative_int = _parser(int, False, NON_NEGATIVE_INT)


def add_setting_flags(group, classes, skip=(), only=None, defaults=None):
    """Add `--name` for every `setting` field of the dataclasses `classes` (a name shared by several
    classes once; with `only`, just those names), all defaulting to None so a caller can tell which were
    given; returns their names. `defaults` overrides the default a field's help shows (a caller's own)."""
    fields, defaults = {}, defaults or {}
    for cls in classes:
        for f in dataclasses.fields(cls):
            if (f.metadata.get("flag", True) and "help" in f.metadata and f.name not in skip
                    and (only is None or f.name in only)):
                fields.setdefault(f.name, []).append(f)
    for name, same in fields.items():
        f = same[0]
        required = f.default is dataclasses.MISSING
        default = defaults.get(name, f.default)
        shown = len({repr(g.default) for g in same}) == 1 and default not in (None, (), dataclasses.MISSING)
        text = f.metadata["help"] + (f" (default {_shown(default)})" if shown else "")
        options = {"dest": name, "default": None, "help": text, "required": required}
        kind, is_list = _value_type(f.type)
        flag = "--" + name.replace("_", "-")
        if kind is bool:
            group.add_argument(flag, action=argparse.BooleanOptionalAction, **options)
        elif kind in (int, float) or is_list:
            group.add_argument(flag, type=_parser(kind, is_list, f.metadata.get("check")),
                               metavar="A,B" if is_list else kind.__name__.upper(), **options)
        else:
            group.add_argument(flag, choices=choices_of(f), **options)
    return list(fields)


def _shown(default):
    return ",".join(map(str, default)) if isinstance(default, tuple) else default


def setting_flags(settings, names):
    """The flags that give `settings`' values of the fields `names` (the inverse of `add_setting_flags`):
    `--name value`, lists comma-separated, `--name`/`--no-name` for a bool that is not its default, nothing
    for None."""
    defaults = {f.name: f.default for f in dataclasses.fields(settings)}
    flags = []
    for name in names:
        value, flag = getattr(settings, name), "--" + name.replace("_", "-")
        if value is None or (isinstance(value, bool) and value == defaults[name]):
            continue
        if isinstance(value, bool):
            flags.append(flag if value else "--no-" + flag[2:])
        else:
            flags += [flag, ",".join(map(str, value)) if isinstance(value, tuple) else str(value)]
    return flags


def given(args, names):
    """{name: value} of the flags among `names` that were given."""
    return {name: getattr(args, name) for name in names if getattr(args, name, None) is not None}


def fail(message, code=1):
    """Print `message` as one line on stderr and exit with `code`."""
    print(f"{sys.argv[0].rsplit('/', 1)[-1]}: error: {message}", file=sys.stderr, flush=True)
    raise SystemExit(code)
