"""The shape of the exported code, read from the notebooks and the library (no import of semples).

    python tests/code_shape.py            # the table: per module, exported cells, median/max lines, public names
    python tests/code_shape.py --json     # the same as JSON

Printed figures: lines per exported cell (directive lines and blank lines not counted), the longest exported
function or method (lines of its `def` statement, decorators included), public names per module (`__all__`).
"""
import ast, json, statistics, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

def exported_cells(nb_path:Path)->list:
    "Source lines of the cells of a notebook that `#| export`/`#| exports` puts into the library."
    nb = json.loads(nb_path.read_text(encoding='utf-8'))
    out = []
    for c in nb['cells']:
        if c['cell_type'] != 'code': continue
        lines = ''.join(c['source']).splitlines()
        flags = [l.strip() for l in lines if l.strip().startswith('#|')]
        if not any(f.replace(' ', '') in ('#|export', '#|exports') for f in flags): continue
        out.append([l for l in lines if l.strip() and not l.strip().startswith('#|')])
    return out

def functions(py_path:Path)->list:
    "(qualified name, lines) of every function and method of a module."
    tree = ast.parse(py_path.read_text(encoding='utf-8'))
    res = []
    def walk(node, pre=''):
        for n in ast.iter_child_nodes(node):
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)):
                start = min([n.lineno] + [d.lineno for d in n.decorator_list])
                res.append((pre + n.name, n.end_lineno - start + 1)); walk(n, pre + n.name + '.')
            elif isinstance(n, ast.ClassDef): walk(n, pre + n.name + '.')
    walk(tree)
    return res

def public_names(py_path:Path)->list:
    "The module's `__all__`."
    for n in ast.parse(py_path.read_text(encoding='utf-8')).body:
        if isinstance(n, ast.Assign) and any(getattr(t, 'id', None) == '__all__' for t in n.targets):
            return [ast.literal_eval(e) for e in n.value.elts]
    return []

def shape(root:Path=ROOT)->dict:
    "Per module and overall: exported cells, lines per cell (median, max), longest function, public names."
    mods, all_cells, all_fns = {}, [], []
    lib = root/'semples'
    for nb in sorted((root/'nbs').rglob('*.ipynb')):
        if '.ipynb_checkpoints' in nb.parts: continue
        text = nb.read_text(encoding='utf-8')
        mod = next((l.split('default_exp', 1)[1].strip().strip('\\n",') for l in text.splitlines() if 'default_exp' in l), None)
        if not mod: continue
        py = lib.joinpath(*mod.split('.')).with_suffix('.py')
        cells = [len(c) for c in exported_cells(nb)]
        fns = functions(py) if py.is_file() else []
        all_cells += cells; all_fns += [(f'{mod}.{n}', k) for n, k in fns]
        longest = max(fns, key=lambda t: t[1]) if fns else ('-', 0)
        mods[mod] = dict(notebook=str(nb.relative_to(root)), cells=len(cells), median=statistics.median(cells) if cells else 0,
                         max=max(cells, default=0), longest=longest[0], longest_lines=longest[1],
                         public=len(public_names(py)) if py.is_file() else 0)
    top = max(all_fns, key=lambda t: t[1]) if all_fns else ('-', 0)
    return dict(modules=mods, total=dict(cells=len(all_cells), median=statistics.median(all_cells) if all_cells else 0,
                                         over_40=sum(c > 40 for c in all_cells), longest=top[0], longest_lines=top[1],
                                         over_50=sorted([f'{n} ({k})' for n, k in all_fns if k > 50]),
                                         public=sum(m['public'] for m in mods.values())))

def table(s:dict)->str:
    lines = ['| module | notebook | exported cells | median lines | max lines | longest function (lines) | public names |',
             '|---|---|---|---|---|---|---|']
    for m, d in s['modules'].items():
        lines.append(f"| {m} | {d['notebook']} | {d['cells']} | {d['median']} | {d['max']} | {d['longest']} ({d['longest_lines']}) | {d['public']} |")
    t = s['total']
    lines.append(f"| **all** | | {t['cells']} | {t['median']} | | {t['longest']} ({t['longest_lines']}) | {t['public']} |")
    lines.append(f"\nexported cells over 40 lines: {t['over_40']}; functions over 50 lines: {len(t['over_50'])} {t['over_50']}")
    return '\n'.join(lines)

if __name__ == '__main__':
    s = shape()
    print(json.dumps(s, indent=1) if '--json' in sys.argv else table(s))
