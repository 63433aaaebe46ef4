"""The course as a student meets it, in a real browser: JupyterLab in headless Chromium (driven by Playwright with the
system browser) runs two notebooks with Run All, a widget redraws when its slider moves, and the course site loads
with every image and link and no request to another host; the start page and a core page are read as a student
sees them: formulas typeset (no raw TeX left in the text), no code block wider than its column, previous and next in
course order.

Needs the Debian package `chromium` (CI installs it: .ci/run) and Playwright from PyPI (the dev extra). Without the
browser the test is skipped with a plain message, except in CI (CI=true), where it fails. Screenshots go to
test-artifacts/browser/.
"""
import json, os, re, shutil, socket, subprocess, sys, time, urllib.request
from pathlib import Path
from urllib.parse import unquote, urlparse
import pytest

ROOT = Path(__file__).resolve().parent.parent
ART = ROOT / 'test-artifacts' / 'browser'
NOTEBOOKS = ('15_explore.ipynb', '09_prompts.ipynb')   # the widgets' notebook and the one whose Run All once failed
CHROMIUM = os.environ.get('SEMPLES_CHROMIUM') or shutil.which('chromium') or shutil.which('chromium-browser')

def _need_browser():
    "The browser and Playwright, or a skip (locally) / failure (CI) that says what is missing."
    missing = []
    if not CHROMIUM: missing.append('the Chromium browser (Debian: apt-get install chromium)')
    try: import playwright.sync_api  # noqa: F401
    except ImportError: missing.append('Playwright (pip install -e ".[dev]")')
    if not missing: return
    msg = 'real-browser test NOT RUN: missing ' + ' and '.join(missing)
    if os.environ.get('CI') == 'true': pytest.fail(msg + ' (CI must run it)')
    pytest.skip(msg)

def _free_port():
    with socket.socket() as s: s.bind(('127.0.0.1', 0)); return s.getsockname()[1]

@pytest.fixture(scope='module')
def lab(tmp_path_factory):
    "JupyterLab on a scratch copy of nbs/ (autosave never touches the real notebooks), with its own settings."
    _need_browser()
    tmp = tmp_path_factory.mktemp('lab')
    shutil.copytree(ROOT / 'nbs', tmp / 'nbs', ignore=shutil.ignore_patterns('.ipynb_checkpoints'))
    shutil.copy(ROOT / 'settings.ini', tmp)   # the last cell of each notebook runs nbdev_export(): it writes into tmp/semples
    for d in ('data', 'configs', 'results'):   # a notebook's own cells find the project as the folder above nbs/, as in a clone
        (tmp / d).symlink_to(ROOT / d, target_is_directory=True)
    cfg, settings = tmp / 'cfg', tmp / 'settings' / '@jupyterlab' / 'notebook-extension'
    cfg.mkdir(); settings.mkdir(parents=True)
    (cfg / 'jupyter_server_config.py').write_text("c.LabApp.news_url = None\n"
                                                  "c.LabApp.check_for_updates_class = 'jupyterlab.NeverCheckForUpdate'\n"
                                                  "c.ServerApp.disable_check_xsrf = True\n")   # a scratch server on 127.0.0.1: scripts may DELETE sessions
    (settings / 'tracker.jupyterlab-settings').write_text(json.dumps({'windowingMode': 'none'}))   # every cell in the DOM
    port = _free_port()
    env = dict(os.environ, JUPYTER_CONFIG_DIR=str(cfg), JUPYTERLAB_SETTINGS_DIR=str(tmp / 'settings'),
               JUPYTERLAB_WORKSPACES_DIR=str(tmp / 'ws'), JUPYTER_RUNTIME_DIR=str(tmp / 'rt'))
    env.pop('SEMPLES_RUN_FLAGGED', None)   # Run All as a student gets it: flagged cells skipped
    env.pop('MPLBACKEND', None)            # the test command's Agg would stop the kernel's inline figures (widgets draw nothing)
    log = open(tmp / 'lab.log', 'w')
    proc = subprocess.Popen([sys.executable, '-m', 'jupyter', 'lab', '--no-browser', f'--port={port}', '--ServerApp.token=',
                             '--ServerApp.password=', '--allow-root', f'--ServerApp.root_dir={tmp}'],
                            env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f'http://127.0.0.1:{port}'
    for _ in range(120):
        try: urllib.request.urlopen(url + '/api/status', timeout=2); break
        except OSError: time.sleep(0.5)
    else: proc.kill(); pytest.fail('JupyterLab did not start: ' + (tmp / 'lab.log').read_text()[-2000:])
    yield url, tmp
    proc.terminate()
    try: proc.wait(timeout=20)
    except subprocess.TimeoutExpired: proc.kill()
    log.close()

@pytest.fixture(scope='module')
def browser():
    _need_browser()
    from playwright.sync_api import sync_playwright
    ART.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=['--no-sandbox'])
        yield b
        b.close()

def _need_site()->Path:
    "The course site made by step 3 of the test command, or a skip (locally) / failure (CI) that says how to make it."
    site = ROOT / '_site'
    if not (site / 'render.json').is_file():
        msg = '_site/ not rendered: run `semples render --out _site` (step 3 of the test command) first'
        if os.environ.get('CI') == 'true': pytest.fail(msg)
        pytest.skip(msg)
    return site

PROMPT = '.jp-NotebookPanel:not(.lm-mod-hidden) .jp-CodeCell .jp-InputPrompt'

def run_all(page, url, name, timeout=420):
    "Open a notebook, Run All through the Run menu, wait until every code cell has run; returns the seconds taken."
    page.goto(f'{url}/lab/tree/nbs/{name}?reset')
    page.wait_for_selector('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook', timeout=60_000)
    for _ in range(240):   # the notebook's kernel is started and idle (the server's view, not the page's)
        sessions = json.loads(urllib.request.urlopen(f'{url}/api/sessions', timeout=5).read())
        if any(s['path'].endswith(name) and (s.get('kernel') or {}).get('execution_state') == 'idle' for s in sessions): break
        time.sleep(0.5)
    else: pytest.fail(f'no idle kernel for {name}: {sessions}')
    time.sleep(2)   # let the page connect to it
    t0 = time.time()
    if not page.locator(PROMPT).count(): return 0.0   # no code cell: nothing to run
    page.locator('.lm-MenuBar-item', has_text='Run').first.click()
    page.locator('.lm-Menu-item[data-command="runmenu:run-all"]').click()
    deadline = t0 + timeout
    while time.time() < deadline:
        prompts = page.locator(PROMPT).all_inner_texts()
        if prompts and all(re.fullmatch(r'\[\d+\]:', p.strip()) for p in prompts): return time.time() - t0
        if any('Traceback' in t for t in page.locator('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-OutputArea-output').all_inner_texts()): break
        if page.locator('.jp-Dialog').count(): break   # e.g. 'Select Kernel' or 'Kernel Restarting': a student would be stuck
        time.sleep(1)
    page.screenshot(path=str(ART / f'{Path(name).stem}_failed.png'), full_page=True)
    bad = [p for p in page.locator(PROMPT).all_inner_texts() if not re.fullmatch(r'\[\d+\]:', p.strip())]
    errs = [t[:1500] for t in page.locator('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-OutputArea-output').all_inner_texts() if 'Traceback' in t]
    dialog = page.locator('.jp-Dialog').all_inner_texts()
    pytest.fail(f'Run All of {name} did not finish: {len(bad)} cells not run; errors: {errs}; dialog: {dialog}')

def test_jupyterlab_run_all_and_a_widget_redraws(lab, browser):
    url, tmp = lab
    page = browser.new_page(viewport={'width': 1400, 'height': 1000})
    times = {}
    for name in NOTEBOOKS:
        times[name] = run_all(page, url, name)
        outs = page.locator('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-OutputArea-output').all_inner_texts()
        errs = [t[:800] for t in outs if 'Traceback' in t or re.search(r'^\w*Error\b', t, re.M)]
        assert not errs, f'{name}: error output after Run All: {errs}'
        if name == '09_prompts.ipynb':   # its flagged cells announce themselves instead of running
            assert any('[skipped: this cell is flagged #| slow' in t for t in outs), 'the slow cells of 09_prompts did not say they were skipped'
        page.screenshot(path=str(ART / f'{Path(name).stem}_run_all.png'))
        if name != '15_explore.ipynb': continue
        # the threshold explorer: move its slider, its figure must be redrawn
        box = page.locator('.widget-interact').filter(has=page.locator('.widget-label', has_text=re.compile(r'^threshold$'))).first
        box.scroll_into_view_if_needed()
        img = box.locator('.widget-output img').first
        before, readout = img.get_attribute('src'), box.locator('.widget-readout').first.inner_text()
        box.locator('.noUi-handle').first.focus(); page.keyboard.press('ArrowRight')
        for _ in range(120):   # the output is cleared and drawn again: a new <img> with another figure
            after = img.get_attribute('src') if img.count() else before
            if after != before: break
            time.sleep(0.5)
        assert box.locator('.widget-readout').first.inner_text() != readout, 'the slider did not move'
        assert after != before, f'the figure was not redrawn after the threshold moved from {readout}'
        box.screenshot(path=str(ART / 'threshold_explorer_after_slider.png'))
    (ART / 'run_all_seconds.json').write_text(json.dumps({k: round(v, 1) for k, v in times.items()}, indent=1))
    page.close()

def test_course_site_offline(browser):
    "Every page of _site (made by step 3 of the test command) loads its images, its links resolve, nothing leaves the machine."
    site = _need_site()
    pages = sorted(p for p in site.rglob('*.html') if 'executed' not in p.parts)
    assert len(pages) >= 20, pages
    ctx = browser.new_context(); outside = []
    ctx.route('**/*', lambda route: (outside.append(route.request.url), route.abort()) if not route.request.url.startswith(('file:', 'data:'))
              else route.continue_())
    page = ctx.new_page(); broken = []
    for p in pages:
        page.goto(p.as_uri())
        n_img, bad_img = page.evaluate('() => [document.images.length, [...document.images].filter(i => !(i.complete && i.naturalWidth > 0)).length]')
        if bad_img: broken.append(f'{p.name}: {bad_img} of {n_img} images did not load')
        typeset(page)
        if raw := page.evaluate(RAW_TEX): broken.append(f'{p.name}: raw TeX in the text: {raw[:3]}')
        if wide := page.evaluate(WIDE_CODE): broken.append(f'{p.name}: {wide} code blocks wider than their column')
        for href in page.evaluate('() => [...document.querySelectorAll("a[href]")].map(a => a.href)'):
            u = urlparse(href)
            if u.scheme == 'file' and not Path(unquote(u.path)).exists(): broken.append(f'{p.name}: link to missing {unquote(u.path)}')
        if p.name == 'map.html': page.screenshot(path=str(ART / 'course_map.png'), full_page=True)
    ctx.close()
    assert not broken, broken
    assert not outside, f'pages requested other hosts: {sorted(set(outside))}'

RAW_TEX = """() => { const out = [], w = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  while (w.nextNode()) { const n = w.currentNode;
    if (n.parentElement.closest('pre,code,script,style,mjx-container')) continue;
    if (/\\$|\\\\(frac|mathcal|lambda|odot|in)\\b/.test(n.textContent)) out.push(n.textContent.trim().slice(0, 80)); }
  return out; }"""
WIDE_CODE = "() => [...document.querySelectorAll('pre')].filter(e => e.offsetParent && e.scrollWidth > e.clientWidth + 1).length"

def typeset(page):
    "Wait until MathJax (served by the site itself) has typeset the page; pages without it return at once."
    if not page.locator('script[src*=mathjax]').count(): return
    page.wait_for_function('() => !!(window.MathJax && MathJax.startup && MathJax.startup.promise)', timeout=30_000)
    page.evaluate('() => MathJax.startup.promise.then(() => true)')

def test_start_page_and_a_core_page_as_a_student_reads_them(browser):
    "The landing page and 10_refine at 1280 px: typeset math, images loaded, code within its column, prev/next in course order."
    site = _need_site()
    order = [r['page'] for r in json.loads((site / 'render.json').read_text())]
    assert order[:2] == ['index.html', '01a_method.html'], order[:4]
    page = browser.new_page(viewport={'width': 1280, 'height': 900})
    for name, shot in (('index.html', 'start_page.png'), ('01a_method.html', None), ('10_refine.html', '10_refine_first_screen.png')):
        page.goto((site / name).as_uri()); typeset(page)
        assert page.evaluate("() => [...document.images].every(i => i.complete && i.naturalWidth > 0)"), f'{name}: an image did not load'
        assert page.evaluate(RAW_TEX) == [], f'{name}: raw TeX left in the text'
        assert page.evaluate(WIDE_CODE) == 0, f'{name}: a code block is wider than its column'
        assert page.locator('nav.toc a').count() >= 3, f'{name}: no table of contents'
        i, links = order.index(name), page.locator('body > nav').first.locator('a').evaluate_all('as => as.map(a => a.getAttribute("href"))')
        want = ([order[i - 1]] if i else []) + ['index.html', 'map.html'] + ([order[i + 1]] if i + 1 < len(order) else [])
        assert links == want, f'{name}: navigation {links}, course order says {want}'
        if name == '01a_method.html': assert page.locator('mjx-container').count() >= 20, 'the method page has no typeset formulas'
        if name == '10_refine.html':
            assert page.locator('details.fold > summary').count() >= 3, 'the plumbing of 10_refine is not folded'
            assert page.locator('a[href="01a_method.html"]').count(), '10_refine does not link the method page'
        if shot: page.screenshot(path=str(ART / shot))
    page.close()
