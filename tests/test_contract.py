"""The contract is told once: docs/families.md's table lists every public member of `AutoencoderModel` and
nothing that is not one, and README and the docs give the same steps to add a family."""

import re

from conftest import REPO
from models.base import AutoencoderModel


def contract_table():
    """{member: what a family does with it} of docs/families.md's contract table."""
    text = (REPO / "docs" / "families.md").read_text()
    section = text.split("## The contract", 1)[1].split("\n## ", 1)[0]
    rows = [line.split("|")[1:3] for line in section.splitlines() if line.startswith("| `")]
    return {name.split("(")[0]: role.strip() for first, role in rows for name in re.findall(r"`([^`]+)`", first)}


def public_members():
    """The names `AutoencoderModel` itself defines, not Keras's: the contract in the code."""
    return {name for name in vars(AutoencoderModel) if not name.startswith("_")}


def test_the_table_is_the_class():
    table = contract_table()
    assert public_members() - set(table) == set(), "members the table does not tell"
    assert set(table) - public_members() == set(), "members the table tells that the class does not have"
    assert {name for name, role in table.items() if role == "supplies"} == {
        "Objective", "build_networks", "forward", "loss_terms", "sample_codes"}


def test_readme_and_the_docs_agree_on_adding_a_family():
    readme = (REPO / "README.md").read_text()
    steps = (REPO / "docs" / "families.md").read_text().split("## Adding a family", 1)[1].split("\n## ", 1)[0]
    for words in ("one file", "models/__init__.py", "VAE_FAMILY_MODULES", "register_preset"):
        assert words in steps and words in readme, words
