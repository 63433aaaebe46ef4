"The library grows in course order: a module imports only modules of earlier notebooks, and no module of the method imports the research record."
import ast, json, re
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parent.parent

def notebook_order(root:Path=ROOT)->list:
    "Modules in course order: the numbered method notebooks, then nbs/research/, then the tools (90_cli, 91_render)."
    def key(p):
        num = re.match(r'(\d+)', p.name)
        n = int(num.group(1)) if num else 999
        return (0 if p.parent.name != 'research' and n < 90 else 1 if p.parent.name == 'research' else 2, p.name)
    out = []
    for nb in sorted((p for p in (root/'nbs').rglob('*.ipynb') if '.ipynb_checkpoints' not in p.parts), key=key):
        src = '\n'.join(''.join(c['source']) for c in json.loads(nb.read_text())['cells'] if c['cell_type'] == 'code')
        m = re.search(r'^#\|\s*default_exp\s+(\S+)', src, flags=re.M)
        if m: out.append(m.group(1))
    return out

def imports_of(py:Path, module:str)->set:
    "The semples modules a module file imports, at module level or inside functions (relative imports resolved)."
    pkg = module.split('.')[:-1]
    found = set()
    for n in ast.walk(ast.parse(py.read_text())):
        if isinstance(n, ast.ImportFrom):
            if n.level: base = '.'.join((pkg[:len(pkg) - n.level + 1] if n.level > 1 else pkg) + ([n.module] if n.module else []))
            elif (n.module or '').startswith('semples'): base = n.module[len('semples.'):] if n.module != 'semples' else ''
            else: continue
            names = [a.name for a in n.names]
            found |= {f'{base}.{a}'.lstrip('.') for a in names} | {base}
        elif isinstance(n, ast.Import):
            found |= {a.name[len('semples.'):] for a in n.names if a.name.startswith('semples.')}
    return found

@pytest.fixture(scope='module')
def layers():
    order = notebook_order()
    mods = {m: i for i, m in enumerate(order)}
    deps = {m: {d for d in imports_of(ROOT/'semples'/(m.replace('.', '/') + '.py'), m) if d in mods and d != m} for m in order}
    return order, mods, deps

def test_every_module_comes_from_one_notebook(layers):
    order, _, _ = layers
    files = {str(p.relative_to(ROOT/'semples').with_suffix('')).replace('/', '.') for p in (ROOT/'semples').rglob('*.py')}
    assert files - {'__init__', '_modidx', 'research.__init__'} == set(order)
    assert len(order) == len(set(order))

def test_modules_import_only_earlier_notebooks(layers):
    order, mods, deps = layers
    late = {m: sorted(d for d in deps[m] if mods[d] > mods[m]) for m in order}
    assert {m: v for m, v in late.items() if v} == {}, 'a module imports a module of a later notebook'
    assert 'pseudo' in deps['cam'] and 'pipeline' in deps['demo'] and 'config' in deps['pipeline']   # the checker sees real edges

def test_method_never_imports_research(layers):
    order, _, deps = layers
    method = [m for m in order if not m.startswith('research.')]
    bad = {m: sorted(d for d in deps[m] if d.startswith('research')) for m in method}
    assert {m: v for m, v in bad.items() if v} == {}
    assert any(d.startswith('research') for m in order if m.startswith('research.') for d in deps[m])   # research does use research

def test_the_checker_catches_a_late_import(tmp_path):
    "A planted import of a later module is found, at module level and inside a function."
    f = tmp_path/'cam.py'
    f.write_text('from .core import x\ndef f():\n    from semples.demo import y\n    import semples.research.results\n')
    assert imports_of(f, 'cam') >= {'core', 'demo', 'research.results'}
    g = tmp_path/'results.py'; g.write_text('from ..pipeline import ROWS\nfrom .bench import z\n')
    assert {'pipeline', 'research.bench'} <= imports_of(g, 'research.results')
