"""Render README.md from the markdown cells of nbs/index.ipynb (Quarto, which nbdev_readme needs, is not used);
the marker `<!-- results.csv -->` becomes the results table generated from results/results.csv, and
`<!-- claims -->` the claims table of the ToyWorld ablation (`semples.research.results.claims_markdown`), and
`<!-- study -->` the mechanism study's rows and targets (`semples.research.mechanism.study_markdown`), and
`<!-- gpu -->` the stored GPU figures (`semples.research.bench.gpu_markdown`).
A code cell flagged `#| echo: false` (the start page's picture and tables) contributes its stored outputs: its
markdown as text, its figures as PNG files under docs/start/ (written, and checked, with README.md). Links are made
relative to the repository root (`07_cam.ipynb` -> `nbs/07_cam.ipynb`, `../results/x.json` -> `results/x.json`).

    python tests/readme.py          # rewrite README.md
    python tests/readme.py --check  # exit 1 when README.md is out of date
"""
import base64, json, re, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS_MARK = '<!-- results.csv -->'
CLAIMS_MARK = '<!-- claims -->'
STUDY_MARK = '<!-- study -->'
GPU_MARK = '<!-- gpu -->'

FIGURES = 'docs/start'

def echo_false(c) -> bool:
    "A code cell whose stored outputs are part of the page (`#| echo: false`)."
    return c['cell_type'] == 'code' and re.match(r'\s*#\|\s*echo:\s*false', ''.join(c['source'])) is not None

def cell_text(c, figures:dict) -> str:
    "A markdown cell's text, or an echo-false code cell's outputs (its figures named in `figures`: path -> PNG bytes)."
    if c['cell_type'] == 'markdown': return ''.join(c['source']).strip()
    alt = next((l.lstrip('# ').strip() for l in ''.join(c['source']).splitlines()[1:] if l.startswith('# ')), 'figure')
    parts = []
    for o in c.get('outputs', []):
        d = o.get('data', {})
        if 'image/png' in d:
            path = f"{FIGURES}/{c['id']}_{len(figures)}.png"; figures[path] = base64.b64decode(''.join(d['image/png']))
            parts.append(f'![{alt}]({path})')
        elif 'text/markdown' in d: parts.append(''.join(d['text/markdown']).strip())
    return '\n\n'.join(parts)

def root_links(text:str) -> str:
    "Relative links of the index notebook (in nbs/) made relative to the repository root."
    fix = lambda m: m.group(1) + (m.group(2)[3:] if m.group(2).startswith('../') else 'nbs/' + m.group(2))
    return re.sub(r'(\]\()((?!https?:|#|/|nbs/|docs/)[^)\s]+)', fix, text)

def render(nb_path=ROOT / 'nbs' / 'index.ipynb', figures:dict|None=None) -> str:
    "README text: the markdown cells of the index notebook and its echo-false outputs, in order; the title's `> subtitle` stays a quote."
    nb = json.loads(Path(nb_path).read_text(encoding='utf-8'))
    figures = {} if figures is None else figures
    cells = [t for c in nb['cells'] if c['cell_type'] == 'markdown' or echo_false(c) if (t := cell_text(c, figures))]
    header = '<!-- generated from nbs/index.ipynb by `python tests/readme.py`; edit the notebook, not this file -->'
    text = header + '\n\n' + root_links('\n\n'.join(cells)) + '\n'
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
    figures = {}
    text, readme = render(figures=figures), ROOT / 'README.md'
    if '--check' in sys.argv:
        ok = readme.exists() and readme.read_text(encoding='utf-8') == text
        ok = ok and all((ROOT / p).is_file() and (ROOT / p).read_bytes() == b for p, b in figures.items())
        print('README.md is in sync with nbs/index.ipynb' if ok else 'README.md is out of date: run python tests/readme.py')
        sys.exit(0 if ok else 1)
    for old in (ROOT / FIGURES).glob('*.png'):
        if str(old.relative_to(ROOT)) not in figures: old.unlink()
    for p, b in figures.items(): (ROOT / p).parent.mkdir(parents=True, exist_ok=True); (ROOT / p).write_bytes(b)
    readme.write_text(text, encoding='utf-8')
    print(f'wrote {readme}' + (f' and {len(figures)} figures in {FIGURES}/' if figures else ''))
