"""Run All of every notebook in JupyterLab, in headless Chromium, as a student on a fresh clone would; print each
notebook's time and any error output. Not part of the test command (about 10 minutes); the README's per-notebook
times come from it.

    python tests/browser_run_all.py [--only 00_core,15_explore]

Uses the machinery of tests/test_browser.py (a scratch copy of nbs/, the system Chromium, Playwright).
"""
import argparse, json, sys, time, urllib.request
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parent))
import test_browser as tb

class _TmpFactory:
    def mktemp(self, name):                       # like pytest's, but removed when this script ends
        from semples.core import scratch_dir
        return scratch_dir(f'semples_{name}_')

def main(only=None):
    import re
    from playwright.sync_api import sync_playwright
    nbs = [p.relative_to(tb.ROOT / 'nbs') for p in sorted((tb.ROOT / 'nbs').glob('*.ipynb')) + sorted((tb.ROOT / 'nbs').glob('research/*.ipynb'))]
    if only: nbs = [p for p in nbs if p.stem in only or str(p.with_suffix('')) in only]
    lab = tb.lab.__wrapped__(_TmpFactory())
    url, tmp = next(lab)
    res = {}
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=tb.CHROMIUM, args=['--no-sandbox'])
        page = b.new_page(viewport={'width': 1400, 'height': 1000})
        for nb in nbs:
            try:
                secs = tb.run_all(page, url, str(nb))
                outs = page.locator('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-OutputArea-output').all_inner_texts()
                errs = [t[:300] for t in outs if 'Traceback' in t or re.search(r'^\w*Error\b', t, re.M)]
                res[str(nb)] = dict(seconds=round(secs, 1), errors=errs)
            except BaseException as e:   # pytest.fail raises a BaseException subclass
                res[str(nb)] = dict(seconds=None, errors=[str(e)[:500]])
            print(f"{str(nb):<32} {'FAILED' if res[str(nb)]['seconds'] is None else res[str(nb)]['seconds']:>7} s  {'errors: ' + str(res[str(nb)]['errors']) if res[str(nb)]['errors'] else 'no error output'}", flush=True)
            page.goto('about:blank')
            for s in json.loads(urllib.request.urlopen(f'{url}/api/sessions').read()):   # free the kernel's memory
                urllib.request.urlopen(urllib.request.Request(f"{url}/api/sessions/{s['id']}", method='DELETE'))
        b.close()
    try: next(lab)
    except StopIteration: pass
    tb.ART.mkdir(parents=True, exist_ok=True)
    (tb.ART / 'run_all_every_notebook.json').write_text(json.dumps(res, indent=1))
    bad = [k for k, v in res.items() if v['errors'] or v['seconds'] is None]
    print(f"{len(res) - len(bad)}/{len(res)} notebooks ran to the end with no error output; total {sum(v['seconds'] or 0 for v in res.values()):.0f} s")
    return 1 if bad else 0

if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--only', default='', help='comma-separated notebook stems')
    a = ap.parse_args()
    sys.exit(main([s for s in a.only.split(',') if s] or None))
