"The project's own promises: CLI, README in sync, and the notebook/library sync check."
import configparser, json, re, shutil, subprocess, sys
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / 'tests'))
import readme

def run(*cmd, cwd=ROOT):
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=300)

def test_version_matches_settings():
    cfg = configparser.ConfigParser(); cfg.read(ROOT / 'settings.ini')
    r = run(sys.executable, '-c', 'import semples; print(semples.__version__)')
    assert r.returncode == 0 and r.stdout.strip() == cfg['DEFAULT']['version']

def test_cli_help_lists_exactly_the_registry_and_every_command_works():
    from semples.cli import COMMANDS
    exe = shutil.which('semples')
    assert exe, 'the console script `semples` is not installed'
    r = run(exe, '--help')
    assert r.returncode == 0
    listed = re.findall(r'^  (\S+)  ', r.stdout, flags=re.M)
    assert listed == list(COMMANDS)
    # each command's --help in one process (the console script is the one checked above): one torch import, not 20
    code = ("import contextlib, io, json, sys\nfrom semples.cli import main, COMMANDS\nout = {}\n"
            "for n in COMMANDS:\n    buf = io.StringIO()\n    with contextlib.redirect_stdout(buf):\n"
            "        try: main([n, '--help']); rc = 0\n        except SystemExit as e: rc = e.code\n"
            "    out[n] = (rc, buf.getvalue())\nprint(json.dumps(out))")
    h = run(sys.executable, '-c', code)
    assert h.returncode == 0, h.stderr[-3000:]
    helps = json.loads(h.stdout.strip().splitlines()[-1])
    assert list(helps) == list(COMMANDS)
    for name, (rc, text) in helps.items(): assert rc == 0 and f'semples {name}' in text, (name, rc, text[-500:])

def test_cli_unknown_command_exits_2():
    r = run(shutil.which('semples'), 'infoo')
    assert r.returncode == 2 and "did you mean 'info'" in r.stderr

def test_readme_generated_from_index():
    figures = {}
    assert (ROOT / 'README.md').read_text() == readme.render(figures=figures), 'run: python tests/readme.py'
    assert figures, 'the start page shows no picture in the README'
    for path, png in figures.items(): assert (ROOT / path).read_bytes() == png, f'{path} is not the stored figure: run python tests/readme.py'

def test_readme_results_table_is_the_csv():
    "The README's results table is generated from results/results.csv: every row of the file is in it."
    import csv
    from semples.research.results import results_markdown
    text = (ROOT / 'README.md').read_text()
    table = results_markdown(ROOT / 'results' / 'results.csv')
    assert table in text and readme.RESULTS_MARK not in text
    rows = list(csv.DictReader((ROOT / 'results' / 'results.csv').open(encoding='utf-8')))
    assert len(rows) == table.count('\n') - 1   # header + separator + one line per row

def _block_after(text, heading):
    "The first ```bash block after a '## heading'."
    part = text.split(f'## {heading}', 1)[1]
    return re.search(r'```bash\n(.*?)```', part, flags=re.S).group(1).strip()

def test_readme_commands_match_ci():
    text = (ROOT / 'README.md').read_text()
    install, test = _block_after(text, 'Install'), _block_after(text, 'Test')
    ci = (ROOT / '.ci' / 'run').read_text()
    assert test in ci.splitlines(), 'the CI script must call exactly the README test command'
    assert 'pip install -e ".[dev]"' in install and 'pip install -e ".[dev]"' in ci

def _copy_project(dst):
    for name in ['nbs', 'semples', 'tests', 'settings.ini']:
        src = ROOT / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, dst / name)

def test_sync_check_passes_on_clean_tree_and_fails_on_hand_edit(tmp_path):
    _copy_project(tmp_path)
    ok = run('bash', 'tests/check_sync.sh', cwd=tmp_path)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    core = tmp_path / 'semples' / 'core.py'
    core.write_text(core.read_text() + '\ndef sneaky(): return 1\n')
    bad = run('bash', 'tests/check_sync.sh', cwd=tmp_path)
    assert bad.returncode == 1
    assert 'semples/core.py' in bad.stdout
    assert 'sneaky' in core.read_text(), 'the check must not overwrite the working files'

def test_no_widget_state_saved_in_notebooks():
    "nbdev_clean keeps notebook-level widget state; saving it bloats diffs, so it must never be committed."
    import json
    for nb in sorted((ROOT / 'nbs').glob('*.ipynb')):
        meta = json.loads(nb.read_text())['metadata']
        assert 'widgets' not in meta, f'{nb.name} holds saved widget state: turn off "Save Widget State Automatically" and remove metadata.widgets'

def test_every_course_notebook_opens_with_why_and_ends_with_exercises():
    "Course rule (issue 8): a Why / What you will learn opening and an '## Exercises' section in every notebook but the index."
    import json
    for f in sorted((ROOT / 'nbs').glob('*.ipynb')):
        if f.name == 'index.ipynb': continue
        md = [''.join(c['source']) for c in json.loads(f.read_text())['cells'] if c['cell_type'] == 'markdown']
        assert 'why' in ' '.join(md[:3]).lower() and 'what you will learn' in ' '.join(md[:4]).lower(), f.name
        assert any('## Exercises' in m for m in md[-3:]), f.name

def test_nbdev_test_still_runs_the_notebooks():
    "The test command runs the notebooks once, through `semples render` (nbdev_test's engine); `nbdev_test` itself keeps working on them."
    exe = shutil.which('nbdev_test')
    assert exe, 'nbdev_test is not installed: pip install -e ".[dev]"'
    r = run(exe, '--path', 'nbs/00_core.ipynb', '--n_workers', '0')
    assert r.returncode == 0 and 'Success' in r.stdout + r.stderr, (r.stdout + r.stderr)[-3000:]

def test_every_notebook_names_its_kernel():
    "Each notebook stores the python3 kernelspec (nbdev_clean keeps it): JupyterLab opens it without a 'Select Kernel' dialog and saves it unchanged."
    nbs = sorted((ROOT / 'nbs').rglob('*.ipynb'))
    assert nbs
    for p in nbs:
        if '.ipynb_checkpoints' in p.parts: continue
        ks = json.loads(p.read_text(encoding='utf-8'))['metadata'].get('kernelspec')
        assert ks and ks['name'] == 'python3' and ks['language'] == 'python', (p.name, ks)   # display_name: nbdev_clean writes 'python3', JupyterLab 'Python 3 (ipykernel)'

def _notebooks():
    return [p for p in sorted((ROOT / 'nbs').rglob('*.ipynb')) if '.ipynb_checkpoints' not in p.parts]

def test_stored_outputs_are_not_stale():
    "Every notebook is stored with the outputs of its code as it is now (`semples render --store` records a hash of the code cells)."
    from semples.render import outputs_stale
    stale = [str(p.relative_to(ROOT)) for p in _notebooks() if outputs_stale(json.loads(p.read_text(encoding='utf-8')))]
    assert not stale, f"outputs older than the code in {stale}: run `semples render --store` and commit the notebooks"

def test_stored_outputs_budget_and_hygiene():
    """Stored outputs: at most 10 MB for all notebooks, figures present, no widget references, no temporary or absolute paths.
    A notebook whose outputs are not the stored ones (run and saved in JupyterLab) is left out here, except in CI."""
    from semples.render import outputs_hash
    import os, warnings
    total, figures, skipped = 0, 0, 0
    for p in _notebooks():
        nb = json.loads(p.read_text(encoding='utf-8'))
        if outputs_hash(nb) != nb['metadata'].get('semples', {}).get('outputs_sha256'):
            assert os.environ.get('CI') != 'true', f"{p.name}: outputs are not the stored ones: run `semples render --store`"
            warnings.warn(f"{p.name} has outputs of a JupyterLab run, not the stored ones: not checked"); skipped += 1; continue
        outs = [o for c in nb['cells'] if c['cell_type'] == 'code' for o in c.get('outputs', [])]
        total += p.stat().st_size; figures += sum('image/png' in o.get('data', {}) for o in outs)
        text = json.dumps(outs)
        assert 'application/vnd.jupyter.widget-view+json' not in text, p.name
        assert '/tmp/tmp' not in text and str(ROOT) not in text and 'ipython-input-' not in text, p.name
    assert total <= 10 * 2**20, f"notebooks with their outputs: {total / 2**20:.1f} MB > 10 MB budget"
    if not skipped: assert figures >= 70, figures   # the course is stored with its pictures (77 when this was written)

def test_run_all_skips_flagged_cells_in_every_notebook():
    "A notebook with #| slow, #| gpu or #| eval: false cells calls skip_flagged_cells() before the first of them, so JupyterLab's Run All skips them."
    from semples.core import cell_flag, never_run
    src = lambda c: c['source'] if isinstance(c['source'], str) else ''.join(c['source'])
    n = 0
    for p in _notebooks():
        code = [src(c) for c in json.loads(p.read_text(encoding='utf-8'))['cells'] if c['cell_type'] == 'code']
        first = next((i for i, s in enumerate(code) if cell_flag(s) or never_run(s)), None)
        if first is None: continue
        n += 1
        assert any('skip_flagged_cells()' in s for s in code[:first]), f"{p.name}: call skip_flagged_cells() before its first flagged cell"
    assert n >= 10, n
