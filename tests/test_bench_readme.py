"""The README's benchmark table is what bench/results/*.json say (bench/readme_tables.py), never retyped."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_readme_benchmark_table_is_generated_from_the_results():
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "readme_tables.py"), "--check"], cwd=ROOT,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr or out.stdout


def test_every_row_names_its_code_path_and_run():
    text = (ROOT / "README.md").read_text()
    table = text.split("<!-- bench-tables:begin -->", 1)[1].split("<!-- bench-tables:end -->", 1)[0]
    rows = [line for line in table.strip().splitlines()[2:] if line.startswith("|")]
    assert rows, "the README has no benchmark rows"
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split(" | ")]
        assert len(cells) == 6 and cells[1] and cells[5], row
