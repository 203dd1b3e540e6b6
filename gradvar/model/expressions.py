"""User objectives written as expressions: ``--objective 'exp(-k*z**2)' --set k=1``.

An expression is read with Python's :mod:`ast` and checked against a whitelist before
anything is built from it (docs/math.md, REFERENCE section 8): numbers, the family's sample
variable (``z``, ``b``; ``y[i]`` with a literal index for a vector sample), declared
parameters, ``+ - * / **``, unary minus, one comparison (worth 1 or 0) and the functions of
:data:`FUNCTIONS`.  The sympy expression is built from the checked tree, one symbol per name
(never by sympify, which reads E, I, N, S or gamma as constants), differentiated
symbolically (f', f'', f''' for a scalar sample, the gradient for a vector one) and printed
into a small kernel module written into the kernel cache folder under a hash of its source,
so Numba caches the combinations that use it like any built-in objective.

``abs``, ``min`` and ``max`` become piecewise expressions; a comparison, or a ``where`` whose
branches differ at its boundary, marks the objective as one that may jump
(``Objective.jumps``: pathwise estimators may be biased).  ``Objective.pieces(x, values)``
labels the smooth piece a sample lies in, so the ground truth can integrate piece by piece.
"""

import ast
import dataclasses
import hashlib
import math

from gradvar.model import registry

FUNCTIONS = {
    "exp": 1,
    "log": 1,
    "sqrt": 1,
    "sin": 1,
    "cos": 1,
    "tan": 1,
    "tanh": 1,
    "abs": 1,
    "min": None,  # two or more arguments
    "max": None,
    "where": 3,  # where(condition, value if true, value if false)
}
HELP = (
    "an expression in the sample variable (normal z, bernoulli b, categorical y[i]) and "
    "parameters declared with --set: numbers, + - * / **, comparisons (1 or 0), "
    + ", ".join(FUNCTIONS)
    + "; e.g. --objective 'exp(-k*z**2)' --set k=1"
)
MAX_LENGTH = 2000  # characters of an expression
MAX_NODES = 400  # syntax-tree nodes
_EXPRESSIONS = {}  # (family, text, declared names) -> Objective
_BUILT = set()  # (family, text) of the objectives registered from expressions
_INDICES = {}  # (family, text) -> {index of the sample: the text of the subscript}


class ExpressionError(ValueError):
    """An expression that is not allowed; the message names the offending part."""


def is_expression(family, name):
    """True unless ``name`` is a registered objective of ``family`` (not an expression)."""
    known = (family.name, name) in registry.OBJECTIVES
    return not known or built(family.name, name)


def built(family, name):
    """Whether the registered objective (family name, name) came from an expression."""
    return (family, name) in _BUILT


def objective_for(family, text, declared):
    """The :class:`registry.Objective` of expression ``text`` on ``family``, registered
    under its text; ``declared`` are the parameter names (``--set``).  The same text with
    other declared names is another objective: the one asked for last is the registered one
    (a Task names its objective by its text, so a run after another one's finds its own)."""
    text = text.strip()
    key = (family.name, text, tuple(sorted(declared)))
    if key not in _EXPRESSIONS:
        _EXPRESSIONS[key] = _build(family, text, set(declared))
    registry.OBJECTIVES[(family.name, text)] = _EXPRESSIONS[key]
    return _EXPRESSIONS[key]


def check_indices(objective, dim):
    """ExpressionError naming the first index of the sample beyond its ``dim`` entries."""
    for i, part in sorted(_INDICES.get((objective.family, objective.name), {}).items()):
        if i >= dim:
            raise ExpressionError(
                f"index out of range (the sample has {dim} entries: 0..{dim - 1}): "
                f"{part!r} in {objective.name!r}"
            )


def is_vector(family):
    return family.min_dim > 1 or any(p.vector for p in family.params)


# --- checking the syntax tree ---------------------------------------------------------------
_BINOPS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.Pow: "**"}
_COMPARE = {ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=", ast.Eq: "==", ast.NotEq: "!="}


def _part(node, text):
    return ast.get_source_segment(text, node) or type(node).__name__


class _Builder:
    """Builds the sympy expression of a checked tree (each node checked as it is visited)."""

    def __init__(self, text, family, declared):
        import sympy

        self.sp, self.text, self.family = sympy, text, family
        self.indices = {}
        self.var = family.variable
        self.vector = is_vector(family)
        self.declared = declared
        self.params = []  # declared names in order of first use
        self.symbols = {}
        self.conditions = []  # relational sympy expressions of every branch
        self.jumps = False

    def fail(self, node, why):
        raise ExpressionError(f"{why}: {_part(node, self.text)!r} in {self.text!r}")

    def symbol(self, name):
        if name not in self.symbols:
            self.symbols[name] = self.sp.Symbol(name, real=True)
        return self.symbols[name]

    def visit(self, node):
        sp = self.sp
        if isinstance(node, ast.Constant):
            v = node.value
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                self.fail(node, "only numbers are allowed as constants")
            return self.number(node, v)
        if isinstance(node, ast.Name):
            return self.name(node)
        if isinstance(node, ast.Subscript):
            return self.index(node)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            inner = self.visit(node.operand)
            return -inner if isinstance(node.op, ast.USub) else inner
        if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
            a, b = self.visit(node.left), self.visit(node.right)
            return self.binop(node, type(node.op), a, b)
        if isinstance(node, ast.Compare):
            if len(node.ops) != 1 or type(node.ops[0]) not in _COMPARE:
                self.fail(node, "only one comparison (<, <=, >, >=, ==, !=) at a time")
            cond = self.relation(node)
            self.jumps = True
            return sp.Piecewise((sp.Integer(1), cond), (sp.Integer(0), True))
        if isinstance(node, ast.Call):
            return self.call(node)
        self.fail(node, f"{type(node).__name__} is not allowed")

    def number(self, node, v):
        sp = self.sp
        if isinstance(v, int) and abs(v) <= 2**53:
            return sp.Integer(v)
        v = float(v)
        if not math.isfinite(v):
            self.fail(node, "numbers must be finite")
        return sp.Rational(v)  # the exact binary value: printed as p/q, read back exactly

    def name(self, node):
        name = node.id
        if name == self.var and not self.vector:
            return self.symbol("_v0")
        if name == self.var:
            self.fail(node, f"the {self.family.name} sample is a vector: write {name}[i]")
        if name in FUNCTIONS:
            self.fail(node, f"{name} is a function: call it")
        if name in {p.name for p in self.family.params} or name in registry.OPTIONS:
            self.fail(
                node, "a family parameter or estimator option: give the objective's another name"
            )
        if name not in self.declared:
            self.fail(
                node,
                f"unknown name (the {self.family.name} sample is {self.var}"
                f"{'[i]' if self.vector else ''}; declare parameters with --set {name}=VALUE)",
            )
        if name not in self.params:
            self.params.append(name)
        return self.symbol(f"_p{self.params.index(name)}")

    def index(self, node):
        ok = isinstance(node.value, ast.Name) and node.value.id == self.var and self.vector
        if not ok:
            self.fail(node, f"only the sample {self.var}[i] may be indexed")
        i = node.slice
        if not (isinstance(i, ast.Constant) and type(i.value) is int):
            self.fail(node, "an index must be a whole number")
        if i.value < 0:
            self.fail(node, "an index must be >= 0")
        self.indices.setdefault(i.value, _part(node, self.text))
        return self.symbol(f"_v{i.value}")

    def binop(self, node, op, a, b):
        sp = self.sp
        if a.is_number and b.is_number:  # fold in floating point: no huge exact integers
            try:
                x, y = float(a), float(b)
                value = {
                    ast.Add: lambda: x + y,
                    ast.Sub: lambda: x - y,
                    ast.Mult: lambda: x * y,
                    ast.Div: lambda: x / y,
                    ast.Pow: lambda: x**y,
                }[op]()
            except (OverflowError, ZeroDivisionError, TypeError, ValueError):
                self.fail(node, "a constant that is not a finite real number")
            if isinstance(value, complex) or not math.isfinite(value):
                self.fail(node, "a constant that is not a finite real number")
            return (
                sp.Integer(int(value))
                if value == int(value) and abs(value) <= 2**53
                else (sp.Rational(value))
            )
        if op is ast.Pow and b.is_number and abs(float(b)) > 1000:
            self.fail(node, "exponents are limited to 1000")
        if op is ast.Div and b.is_number and b == 0:
            self.fail(node, "division by zero")
        return {
            ast.Add: lambda: a + b,
            ast.Sub: lambda: a - b,
            ast.Mult: lambda: a * b,
            ast.Div: lambda: a / b,
            ast.Pow: lambda: a**b,
        }[op]()

    def relation(self, node):
        sp = self.sp
        lhs, rhs = self.visit(node.left), self.visit(node.comparators[0])
        make = {
            ast.Lt: sp.StrictLessThan,
            ast.LtE: sp.LessThan,
            ast.Gt: sp.StrictGreaterThan,
            ast.GtE: sp.GreaterThan,
            ast.Eq: sp.Eq,
            ast.NotEq: sp.Ne,
        }[type(node.ops[0])]
        cond = make(lhs, rhs, evaluate=False)
        self.conditions.append(lhs - rhs)
        return cond

    def call(self, node):
        sp = self.sp
        func = node.func
        if not isinstance(func, ast.Name) or func.id not in FUNCTIONS:
            self.fail(node, f"only the functions {', '.join(FUNCTIONS)} may be called")
        if node.keywords:
            self.fail(node, "keyword arguments are not allowed")
        name, arity = func.id, FUNCTIONS[func.id]
        n = len(node.args)
        if (arity is None and n < 2) or (arity is not None and n != arity):
            want = "two or more arguments" if arity is None else f"{arity} argument(s)"
            self.fail(node, f"{name} takes {want}")
        if name == "where":
            if not isinstance(node.args[0], ast.Compare):
                self.fail(node.args[0], "the first argument of where must be a comparison")
            if len(node.args[0].ops) != 1 or type(node.args[0].ops[0]) not in _COMPARE:
                self.fail(node.args[0], "only one comparison at a time")
            cond = self.relation(node.args[0])
            a, b = self.visit(node.args[1]), self.visit(node.args[2])
            self.jumps = self.jumps or not self.continuous(a - b, self.conditions[-1])
            return sp.Piecewise((a, cond), (b, True))
        args = [self.visit(a) for a in node.args]
        if name == "abs":
            (u,) = args
            self.conditions.append(u)
            return sp.Piecewise((u, u >= 0), (-u, True))
        if name in ("min", "max"):
            out = args[0]
            for b in args[1:]:
                self.conditions.append(out - b)
                keep = out <= b if name == "min" else out >= b
                out = sp.Piecewise((out, keep), (b, True))
            return out
        return getattr(sp, name)(args[0])

    def continuous(self, gap, boundary):
        """True when sympy shows that ``gap`` (the difference of two branches) vanishes
        wherever ``boundary`` does (a continuous ``where``, such as where(z > 1, z - 1, 0))."""
        sp = self.sp
        free = sorted(
            boundary.free_symbols & {s for n, s in self.symbols.items() if n[1] == "v"}, key=str
        )
        if not free:
            return False
        try:
            roots = sp.solve(boundary, free[0], dict=True)
            return bool(roots) and all(sp.simplify(gap.subs(r)) == 0 for r in roots)
        except Exception:  # sympy could not decide: treat it as a possible jump
            return False


def parse(text, family, declared):
    """(sympy expression, builder) of ``text`` after the whitelist check; ExpressionError
    naming the offending part otherwise.  Nothing of the text is evaluated."""
    if not isinstance(text, str):
        raise ExpressionError("an objective is a name or an expression (text)")
    if len(text) > MAX_LENGTH:
        raise ExpressionError(f"the expression is longer than {MAX_LENGTH} characters")
    if "\x00" in text:
        raise ExpressionError("the expression contains a NUL character")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as err:
        raise ExpressionError(f"not a valid expression: {err.msg} in {text!r}") from None
    except (RecursionError, MemoryError, ValueError):
        raise ExpressionError(f"the expression {text[:60]!r} is too deeply nested") from None
    if sum(1 for _ in ast.walk(tree)) > MAX_NODES:
        raise ExpressionError(f"the expression has more than {MAX_NODES} parts")
    bad = {family.variable, *FUNCTIONS} & set(declared)
    if bad:
        raise ExpressionError(f"parameter {sorted(bad)[0]!r} clashes with a name of the expression")
    builder = _Builder(text.strip(), family, set(declared))
    try:
        expr = builder.visit(tree.body)
    except RecursionError:
        raise ExpressionError(f"the expression {text[:60]!r} is too deeply nested") from None
    sp = builder.sp
    if expr.has(sp.zoo, sp.nan, sp.oo, -sp.oo, sp.I):
        raise ExpressionError(f"the expression {text!r} is not a finite real number")
    return expr, builder


# --- the kernel module ------------------------------------------------------------------------
_MODULE = '''\
# Generated by gradvar.model.expressions; do not edit.
# family {family}, objective {text!r}
from numpy import cos, exp, log, power, sin, sqrt, tan, tanh

from gradvar.kernels.jit import kernel


@kernel
def expression(x, objp, grad):
    """f and its gradient df/dx (symbolic differentiation by sympy)."""
{load}{zero}{grad}    return {f}


def derivatives(x, objp):
    """f and its derivatives of order 1 .. {order} at the sample x."""
{load}    return [{derivs}]


def pieces(x, objp):
    """The smooth piece x lies in: one bit per branch condition (0 where f has none)."""
{load}    return {pieces}
'''


def _printer():
    from sympy.printing.pycode import PythonCodePrinter

    class Printer(PythonCodePrinter):
        """Python source that Numba compiles and NumPy evaluates (no complex powers)."""

        def _print_Pow(self, expr, rational=False):
            base, e = expr.as_base_exp()
            if e.is_Integer:
                return f"({self._print(base)})**{int(e)}"
            if e == self._sp.Rational(1, 2):
                return f"sqrt({self._print(base)})"
            if e == -self._sp.Rational(1, 2):
                return f"(1/sqrt({self._print(base)}))"
            return f"power({self._print(base)}, {self._print(e)})"

        def _print_Rational(self, expr):
            return f"({expr.p}/{expr.q})" if expr.q != 1 else str(expr.p)

        def _print_Integer(self, expr):
            return str(expr.p)

        def _print_NumberSymbol(self, expr):
            return repr(float(expr))

        _print_Pi = _print_Exp1 = _print_NumberSymbol

    import sympy

    Printer._sp = sympy
    return Printer({"fully_qualified_modules": False, "standard": "python3"})


def _render(family, text, expr, builder):
    """The kernel module's source."""
    sp = builder.sp
    pr = _printer()
    names = sorted({str(s) for s in expr.free_symbols}, key=lambda n: (n[:2], int(n[2:])))
    load = "".join(f"    {n} = {'x' if n[1] == 'v' else 'objp'}[{int(n[2:])}]\n" for n in names)
    vector = is_vector(family)
    variables = sorted(
        (s for n, s in builder.symbols.items() if n[1] == "v"), key=lambda s: int(str(s)[2:])
    ) or [builder.symbol("_v0")]
    zero = "    for j in range(x.shape[0]):\n        grad[j] = 0.0\n" if vector else ""
    grad = ""
    for v in variables:
        grad += f"    grad[{int(str(v)[2:])}] = {pr.doprint(sp.diff(expr, v))}\n"
    order = 1 if vector else 3
    if vector:
        derivs = [expr]
    else:
        derivs = [expr]
        for _ in range(order):
            derivs.append(sp.diff(derivs[-1], variables[0]))
    conditions = [sp.StrictGreaterThan(c, 0) for c in builder.conditions]
    bits = " + ".join(f"({2**i} if {pr.doprint(c)} else 0)" for i, c in enumerate(conditions))
    return _MODULE.format(
        family=family.name,
        text=text,
        load=load,
        zero=zero,
        grad=grad,
        f=pr.doprint(expr),
        order=order if not vector else 0,
        derivs=", ".join(pr.doprint(d) for d in (derivs if not vector else [expr])),
        pieces=bits or "0",
    ), order


def _load(source):
    """Write the module into the kernel cache folder under the hash of its source (so a
    repeated run finds the same file, and Numba's cache of the combinations that import it
    stays valid) and import it."""
    from gradvar.kernels import codegen

    name = "gradvar_expr_" + hashlib.sha256(source.encode()).hexdigest()[:16]
    return codegen._Generated(name, lambda cache: source, cached=()).module


def _build(family, text, declared):
    try:
        expr, builder = parse(text, family, declared)
    except ExpressionError:
        raise
    except Exception as err:  # sympy refused a checked tree (a huge power, say)
        raise ExpressionError(f"cannot build {text!r}: {type(err).__name__}") from None
    source, order = _render(family, text, expr, builder)
    module = _load(source)
    params = tuple(registry.Param(n, math.nan, help="declared with --set") for n in builder.params)
    sp = builder.sp
    variables = [s for n, s in builder.symbols.items() if n[1] == "v"]
    polynomial = bool(variables) and expr.is_polynomial(*variables)
    degree = int(sp.Poly(expr, *variables).total_degree()) if polynomial else None
    obj = registry.Objective(
        family=family.name,
        name=text,
        params=params,
        summary="(expression)",
        formula=text,
        kernel=module.expression,
        derivatives=order,
        degree=degree if variables else 0,
        jumps=builder.jumps,
        relaxed=True,
    )
    pack = obj.pack

    def derivatives_at(z, values):
        """[f, f', ...] at z, a float or an array (point by point: the printed code of a
        jump or a kink is a Python conditional)."""
        import numpy as np

        objp = pack(values, 1)
        if np.ndim(z) == 0:
            return module.derivatives([float(z)], objp)
        rows = [module.derivatives([float(t)], objp) for t in np.ravel(z)]
        table = np.array(rows, dtype=float).reshape(np.size(z), order + 1)
        return [table[:, i].reshape(np.shape(z)) for i in range(order + 1)]

    def pieces(x, values):
        return module.pieces(x, pack(values, len(x)))

    obj = dataclasses.replace(
        obj,
        derivatives_at=derivatives_at if order > 1 else None,
        pieces=pieces if builder.conditions else None,
    )
    _BUILT.add((family.name, text))  # registered by objective_for
    _INDICES[(family.name, text)] = builder.indices
    return obj
