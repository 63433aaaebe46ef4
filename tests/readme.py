"""Render README.md from the markdown cells of nbs/index.ipynb (Quarto, which nbdev_readme needs, is not used);
the marker `<!-- results.csv -->` becomes the results table generated from results/results.csv, and
`<!-- claims -->` the claims table of the ToyWorld ablation (`semples.research.results.claims_markdown`), and
`<!-- study -->` the mechanism study's rows and targets (`semples.research.mechanism.study_markdown`), and
`<!-- gpu -->` the stored GPU figures (`semples.research.bench.gpu_markdown`).

    python tests/readme.py          # rewrite README.md
    python tests/readme.py --check  # exit 1 when README.md is out of date
"""
import json, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS_MARK = '<!-- results.csv -->'
CLAIMS_MARK = '<!-- claims -->'
STUDY_MARK = '<!-- study -->'
GPU_MARK = '<!-- gpu -->'

def render(nb_path=ROOT / 'nbs' / 'index.ipynb') -> str:
    "README text: the markdown cells of the index notebook, in order; the title's `> subtitle` stays a quote."
    nb = json.loads(Path(nb_path).read_text(encoding='utf-8'))
    cells = [''.join(c['source']).strip() for c in nb['cells'] if c['cell_type'] == 'markdown']
    header = '<!-- generated from nbs/index.ipynb by `python tests/readme.py`; edit the notebook, not this file -->'
    text = header + '\n\n' + '\n\n'.join(cells) + '\n'
    if RESULTS_MARK in text:   # the results table, generated from results/results.csv
        from semples.research.results import results_markdown
        text = text.replace(RESULTS_MARK, results_markdown(ROOT / 'results' / 'results.csv'))
    if CLAIMS_MARK in text:    # the claims of the ToyWorld ablation, generated from the stored result files
        from semples.research.results import claims_markdown
        text = text.replace(CLAIMS_MARK, claims_markdown())
    if STUDY_MARK in text:     # the mechanism study's rows and targets, generated from its stored file
        from semples.research.mechanism import study_markdown
        text = text.replace(STUDY_MARK, study_markdown())
    if GPU_MARK in text:       # the GPU figures, generated from results/gpu_h200.json
        from semples.research.bench import gpu_markdown
        text = text.replace(GPU_MARK, gpu_markdown())
    return text

if __name__ == '__main__':
    text, readme = render(), ROOT / 'README.md'
    if '--check' in sys.argv:
        ok = readme.exists() and readme.read_text(encoding='utf-8') == text
        print('README.md is in sync with nbs/index.ipynb' if ok else 'README.md is out of date: run python tests/readme.py')
        sys.exit(0 if ok else 1)
    readme.write_text(text, encoding='utf-8')
    print(f'wrote {readme}')
