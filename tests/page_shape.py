"""Where each course page shows its first figure, measured in a real browser (Chromium at 1280 px, as a student
reads the site: plumbing folded, formulas typeset).

    semples render --out _site          # first: the site
    python tests/page_shape.py          # one row per page, in course order
    python tests/page_shape.py _site --json shape.json

For every page: its height in pixels, where its first figure starts (as a fraction of the page's height; a core
page should show it in its first third), its figures, and the share of its height taken by code (open code cells
and their outputs; folded plumbing counts as its one-line summary).
"""
import json, os, shutil, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = os.environ.get('SEMPLES_CHROMIUM') or shutil.which('chromium') or shutil.which('chromium-browser')
MEASURE = """() => {
  const H = document.documentElement.scrollHeight, top = e => e.getBoundingClientRect().top + window.scrollY;
  const shown = e => e.offsetParent && !e.closest('details:not([open])');   // a closed fold lays out its content all the same
  const figs = [...document.querySelectorAll('main img')].filter(shown);
  const code = [...document.querySelectorAll('main .input_area')].filter(shown).reduce((s, e) => s + e.offsetHeight, 0);
  return {height: H, first: figs.length ? top(figs[0]) / H : null, figures: figs.length, code: code / H}; }"""

def measure(site:Path)->list:
    "One dict per page of the site, in course order (render.json): page, group, height, first, figures, code."
    from playwright.sync_api import sync_playwright
    pages = json.loads((site / 'render.json').read_text())
    out = []
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=['--no-sandbox'])
        pg = b.new_page(viewport={'width': 1280, 'height': 900})
        for r in pages:
            pg.goto((site / r['page']).as_uri()); pg.wait_for_load_state('load')
            if pg.locator('script[src*=mathjax]').count():
                pg.wait_for_function('() => !!(window.MathJax && MathJax.startup && MathJax.startup.promise)', timeout=30_000)
                pg.evaluate('() => MathJax.startup.promise.then(() => true)')
            out.append(dict(page=r['page'], group=r.get('group', ''), **pg.evaluate(MEASURE)))
        b.close()
    return out

if __name__ == '__main__':
    args = [a for a in sys.argv[1:] if not a.startswith('--')]
    site = (Path(args[0]) if args else ROOT / '_site').resolve()
    if not (site / 'render.json').is_file(): sys.exit(f'{site} has no render.json: run `semples render --out {site}` first')
    if not CHROMIUM: sys.exit('needs Chromium (apt-get install chromium) and Playwright (the dev extra)')
    rows = measure(site)
    print(f"{'page':<34} {'part':<22} {'height px':>9} {'1st figure':>10} {'figures':>7} {'code':>5}")
    for r in rows:
        first = f"{100 * r['first']:.0f}%" if r['first'] is not None else '-'
        print(f"{r['page']:<34} {r['group']:<22} {r['height']:>9} {first:>10} {r['figures']:>7} {100 * r['code']:>4.0f}%")
    if '--json' in sys.argv: Path(sys.argv[sys.argv.index('--json') + 1]).write_text(json.dumps(rows, indent=1))
