"""Print the README's tables that the code defines, to paste into README.md.

    python -m tools.readme_tables

The settings table (every setting's name, default and meaning, from survey_app/settings.py) and
the aggregate CSV's columns (survey_app/exports.py). tests/test_docs.py checks that the README
holds exactly these, so a setting or a column changed in the code fails the tests until the
README is updated from this output.
"""

from survey_app.exports import CSV_COLUMNS
from survey_app.settings import markdown_table


def csv_columns() -> str:
    """The aggregate CSV's columns as the README's `pulse export` row names them."""
    return "columns `" + ", ".join(CSV_COLUMNS) + "`"


if __name__ == "__main__":
    print("## Settings table (README.md, under '## Settings')\n")
    print(markdown_table())
    print("## The aggregate CSV (README.md, the `pulse export` row of the commands table)\n")
    print(csv_columns())
