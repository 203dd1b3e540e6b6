"""Lazy Numba compilation.

Kernels are written as plain module-level functions decorated with :func:`kernel`.
Nothing imports numba until the engine first needs a compiled kernel, so that the
registries (and ``gradvar --help``) load instantly.  :func:`materialize` then replaces
every decorated function in its module by ``numba.njit(...)``, so kernels
calling each other by their global names see compiled dispatchers.
"""

import sys
import types

_MODULES = []
_COMPILED = {}
# Component kernels are not cached on their own: Numba would not notice when a kernel they
# call changes.  The generated per-combination kernels (see codegen.py) are cached instead,
# under a name that carries a hash of the kernel sources.
#
# ``_nrt=False`` (NRT_OFF, a private Numba option): component kernels never allocate, and
# without it every call that passes an array pays atomic reference-count updates (measured:
# 14 ns instead of 2.3 ns per normal variate).  It is used only where this Numba accepts it
# (:func:`gradvar.kernels.codegen.features`).  ``error_model="numpy"``: no division-by-zero
# checks in the hot loops.
NRT_OFF = {"_nrt": False}
JIT_OPTIONS = dict(error_model="numpy", nogil=True, inline="always")


def jit_options():
    """The options of every kernel: JIT_OPTIONS, plus NRT_OFF where this Numba accepts it."""
    from gradvar.kernels import codegen

    return {**JIT_OPTIONS, **NRT_OFF} if codegen.features().nrt_off else dict(JIT_OPTIONS)


class Kernel:
    """A module-level function that will be compiled by Numba on first use."""

    def __init__(self, py_func, options):
        self.py_func = py_func
        self.options = options
        self.__name__ = py_func.__name__
        self.__module__ = py_func.__module__
        self.__doc__ = py_func.__doc__
        self.__wrapped__ = py_func

    def __repr__(self):
        return f"<kernel {self.__module__}.{self.__name__}>"

    @property
    def qualname(self):
        """``module:name``, how generated code imports the kernel."""
        return f"{self.__module__}:{self.__name__}"

    @property
    def dispatcher(self):
        """The compiled Numba dispatcher (compiles lazily on first call)."""
        materialize()
        return getattr(sys.modules[self.__module__], self.__name__)

    def __call__(self, *args):
        return self.dispatcher(*args)


def kernel(func=None, **options):
    """Decorate a module-level function as a lazily compiled Numba kernel."""

    def wrap(f):
        if f.__module__ not in _MODULES:
            _MODULES.append(f.__module__)
        return Kernel(f, options)

    return wrap(func) if func is not None else wrap


def materialize():
    """Compile-on-demand: swap every :class:`Kernel` global, defined or imported in a
    kernel module, for its Numba dispatcher."""
    pending = [m for m in _MODULES if m in sys.modules]
    if not pending:
        return
    import numba

    options = jit_options()
    for name in pending:
        for obj in list(vars(sys.modules[name]).values()):
            if isinstance(obj, Kernel) and obj not in _COMPILED:
                _COMPILED[obj] = numba.njit(obj.py_func, **{**options, **obj.options})
    for name in pending:
        module = sys.modules[name]
        for attr, obj in list(vars(module).items()):
            if isinstance(obj, Kernel):
                setattr(module, attr, _COMPILED[obj])
                if obj.options.get("cache"):
                    quick_load(_COMPILED[obj])
        _MODULES.remove(name)


def quick_load(dispatcher):
    """Let ``dispatcher`` load its Numba cache file without Numba's full context refresh.

    Numba's ``Cache.load_overload`` first calls ``target_context.refresh()``, which imports
    and installs every lowering registry (numba.np.arraymath pulls in scipy.linalg for its
    BLAS check): about 0.3 s per process, needed to compile, not to load compiled code.
    Loading needs the symbols the machine code links to: Numba's C helpers and Python's
    (installed with the target context), the NRT (``rtsys.initialize``; only for a kernel
    compiled with it: gradvar's own run without it where this Numba accepts ``_nrt=False``,
    and the cache files carry which they are) and the hash secret
    (installed by importing ``numba.cpython.hashing``), which is what this does instead.
    Only gradvar's cached dispatchers get it (an attribute of their own cache object);
    a cache miss compiles as before, and the compiler refreshes the context itself.  A
    Numba without these internals keeps its own loading.
    """
    cache = getattr(dispatcher, "_cache", None)
    load = getattr(cache, "_load_overload", None)
    guard = getattr(cache, "_guard_against_spurious_io_errors", None)
    index_key = getattr(cache, "_index_key", None)
    if load is None or guard is None or index_key is None or "load_overload" in vars(cache):
        return
    try:
        import numba.cpython.hashing  # noqa: F401  (installs the hash-secret symbols)
        from numba.core.runtime import rtsys
    except ImportError:
        return

    (option,) = NRT_OFF
    nrt = dispatcher.targetoptions.get(option, True)

    def load_overload(sig, target_context):
        if nrt:  # a kernel compiled with _nrt=False links to none of it (0.02 s per process)
            rtsys.initialize(target_context)
        with guard():
            return load(sig, target_context)

    def keyed(sig, codegen):
        """Numba's index key, and whether the machine code uses the NRT: Numba's own key
        holds the signature, the CPU and the bytecode, not the options, so a build made
        with the NRT (a process whose Numba refused _nrt=False, the fallback test) would
        be served to a process that does not start it, and crash there."""
        return (*index_key(sig, codegen), ("nrt", nrt))

    cache.load_overload = load_overload
    cache._index_key = keyed


def rebind(kern, **names):
    """Compile a copy of ``kern`` whose global ``names`` are bound to the given kernels.

    Estimators call the family's and objective's kernels by fixed global names; Numba
    cannot cache kernels that receive other kernels as arguments, but it compiles (and
    caches, inside the caller) direct calls to globals.
    """
    materialize()
    import numba

    py = getattr(kern, "py_func", kern)  # under NUMBA_DISABLE_JIT njit returns the function
    bound = {**py.__globals__, **{k: getattr(v, "dispatcher", v) for k, v in names.items()}}
    func = types.FunctionType(py.__code__, bound, py.__name__, py.__defaults__, py.__closure__)
    func.__qualname__ = py.__qualname__
    return numba.njit(func, **jit_options())


_IN_PYTHON = {}  # Python function -> its copy with the kernels it calls in Python


def in_python(kern, _done=None):
    """``kern``'s Python function, with every kernel it calls (a global that is a
    :class:`Kernel` or a Numba dispatcher) in Python too, down the calls: for the ground
    truth's few calls from Python.  Calling a compiled kernel from Python compiles it (its
    argument types there are not those of any cached build), about 0.4 s in every run.
    Built once per function and process."""
    done = _IN_PYTHON if _done is None else _done
    py = getattr(kern, "py_func", kern)
    if py not in done:
        bound = dict(py.__globals__)
        done[py] = types.FunctionType(
            py.__code__, bound, py.__name__, py.__defaults__, py.__closure__
        )
        for name in py.__code__.co_names:
            value = bound.get(name)
            if callable(value) and hasattr(value, "py_func"):
                bound[name] = in_python(value, done)
    return done[py]


_SCRATCH = []


def scratch_array():
    """``scratch(rows, cols)``: an uninitialised float64 (rows, cols) C array on the stack.

    Called with literal sizes in generated kernels, it lets LLVM keep the estimator's
    scratch rows (sample, state, score, gradient) in registers: heap rows passed in as
    arguments may alias each other and the output, which forces every store and reload
    through memory (measured: fill 15.5 ns/estimate with a heap ``work`` array, 4.2 ns with
    this).  Under NUMBA_DISABLE_JIT=1 it is ``np.empty((rows, cols))``.

    The intrinsic is built from Numba internals (``numba.np.arrayobj.make_array``,
    ``populate_array``, ``cgutils.alloca_once``): :func:`gradvar.kernels.codegen.features`
    tries it once, and where it fails the generated kernels use heap scratch instead (slower,
    same numbers).
    """
    if _SCRATCH:
        return _SCRATCH[0]
    from numba.core import config

    if config.DISABLE_JIT:
        import numpy as np

        def scratch(rows, cols):
            return np.empty((rows, cols))
    else:
        scratch = _make_scratch_intrinsic()
    _SCRATCH.append(scratch)
    return scratch


def _make_scratch_intrinsic():
    from llvmlite import ir
    from numba.core import cgutils, types
    from numba.extending import intrinsic

    @intrinsic
    def scratch(typingctx, rows, cols):
        if not (isinstance(rows, types.IntegerLiteral) and isinstance(cols, types.IntegerLiteral)):
            return None  # sizes must be literals: the buffer lives in the caller's frame
        r, c = rows.literal_value, cols.literal_value
        array_t = types.Array(types.float64, 2, "C")

        def codegen(context, builder, sig, args):
            # imported here, when a kernel is compiled: numba.np.arrayobj registers some 350
            # overloads on import (0.03-0.06 s), which a start that loads cached kernels skips
            from numba.np.arrayobj import make_array, populate_array

            dbl = context.get_value_type(types.float64)
            intp = context.get_value_type(types.intp)
            ptr = cgutils.alloca_once(builder, ir.ArrayType(dbl, r * c))  # in the entry block
            ary = make_array(array_t)(context, builder)
            populate_array(
                ary,
                data=builder.bitcast(ptr, dbl.as_pointer()),
                shape=[ir.Constant(intp, r), ir.Constant(intp, c)],
                strides=[ir.Constant(intp, 8 * c), ir.Constant(intp, 8)],
                itemsize=ir.Constant(intp, 8),
                meminfo=None,
            )
            return ary._getvalue()

        return array_t(rows, cols), codegen

    return scratch
