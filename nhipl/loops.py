"""Quantifier loops for the compiled evaluator: ``any``/``all``/``count`` with their
``where`` condition compiled into one function, so that a history of 1,000 steps costs
1,000 turns of one Python loop rather than 1,000 walks over a tree of closures.

The function's source is generated, but no text from a policy ever reaches it: attribute
names, literals and glob patterns are passed in as values (``c0``, ``c1``, ...), and every
name in the source is made here. What the generated code does is what
:mod:`nhipl.interpret` does, step by step and in the same order (so the same errors, with
the same messages from :mod:`nhipl.semantics`):

* the element's attributes (``h.tool``, ``h.args.to``) are read inline;
* comparisons, string tests, ``has`` and membership in a literal list are inline; a string
  test against a literal remembers its answers per string (a pure function of the string);
* ``and``, ``or``, ``not`` short-circuit as nested ``if`` blocks;
* anything else (a request path, arithmetic, a function, a nested quantifier) is a
  compiled closure from :mod:`nhipl.conditions`; one that does not read the element is
  evaluated once per loop, when first reached.

:func:`compile_loop` returns None for the shapes it does not handle; the caller then
uses the general closure loop.
"""

from __future__ import annotations

from typing import Callable

from . import ast as A
from . import semantics as S
from .values import ListView, equal, glob

_UNSET = object()

_MEMO_SIZE = 4096
"""How many answers of a string test against a literal one loop remembers (then it forgets them all)."""
_MEMO_TEXT = 256
"""The longest string whose answer is remembered."""


def _missing(element: object, name: str, attrs: tuple[str, ...]) -> S.EvalFailure:
    """The error for reading ``name.attrs`` of ``element`` when a step of it is missing."""
    value, walked = element, name
    for attr in attrs:
        if value.__class__ is not dict or attr not in value:
            return S.missing(walked, value, attr)
        value, walked = value[attr], f"{walked}.{attr}"
    raise AssertionError("unreachable: the path was readable")


def _boolean_or_raise(value: object, what: str) -> bool:
    if value is True or value is False:
        return value
    raise S.not_boolean(what, value)


class _Source:
    """The generated function's text and the values it reads."""

    def __init__(self, name: str, compile_expr: Callable) -> None:
        self.name = name
        self.compile_expr = compile_expr
        self.lines: list[str] = []
        self.values: dict[str, object] = {}
        self.invariants: list[str] = []  # names of values computed once per loop
        self.reads_bound = False  # a closure reads the element through scope.bound
        self.counter = 0

    def fresh(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}{self.counter}"

    def value(self, obj: object) -> str:
        name = self.fresh("c")
        self.values[name] = obj
        return name

    def emit(self, depth: int, line: str) -> None:
        self.lines.append("    " * depth + line)


def _reads(node: A.Expr, name: str) -> bool:
    return any(isinstance(n, A.Path) and n.root == name for n in A.iter_exprs(node))


def _value(src: _Source, node: A.Expr, depth: int) -> str:
    """Lines computing ``node``'s value; returns the variable holding it."""
    if isinstance(node, (A.Literal, A.Duration)):
        return src.value(node.value if isinstance(node, A.Literal) else node.seconds)
    if isinstance(node, A.Path) and node.root == src.name:
        var = "e"
        if node.attrs:
            failure = f"_missing(e, {src.value(node.root)}, {src.value(node.attrs)})"
            # Indexing a JSON value other than an object with a string raises TypeError (lists,
            # strings, numbers, booleans, null, list views alike), so one `try` is the check.
            for attr in node.attrs:
                step = src.fresh("v")
                src.emit(depth, "try:")
                src.emit(depth + 1, f"{step} = {var}[{src.value(attr)}]")
                src.emit(depth, "except (KeyError, TypeError):")
                src.emit(depth + 1, f"raise {failure} from None")
                var = step
        return var
    closure = src.value(src.compile_expr(node))
    var = src.fresh("v")
    if _reads(node, src.name):
        src.reads_bound = True
        src.emit(depth, f"{var} = {closure}(scope)")
        return var
    # the same for every element: computed when first reached, then kept
    src.invariants.append(var)
    src.emit(depth, f"if {var} is _UNSET:")
    src.emit(depth + 1, f"{var} = {closure}(scope)")
    return var


def _boolean(src: _Source, node: A.Expr, target: str, depth: int, what: str) -> None:
    """Lines setting ``target`` to the boolean value of ``node`` (an error when it is not one:
    ``what`` says where, as the interpreter's message does)."""
    if isinstance(node, A.And) or isinstance(node, A.Or):
        is_and = isinstance(node, A.And)
        operand_what = S.AND_OPERAND if is_and else S.OR_OPERAND
        _boolean(src, node.operands[0], target, depth, operand_what)
        inner = depth
        for operand in node.operands[1:]:
            src.emit(inner, f"if {target}:" if is_and else f"if not {target}:")
            inner += 1
            _boolean(src, operand, target, inner, operand_what)
        return
    if isinstance(node, A.Not):
        _boolean(src, node.operand, target, depth, S.NOT_OPERAND)
        src.emit(depth, f"{target} = not {target}")
        return
    if isinstance(node, A.Literal) and node.value.__class__ is bool:
        src.emit(depth, f"{target} = {node.value!r}")
        return
    if isinstance(node, A.Compare):
        left, right = _value(src, node.left, depth), _value(src, node.right, depth)
        if node.op in ("==", "!="):
            const, other = _UNSET, left
            if isinstance(node.right, A.Literal):
                const = node.right.value
            elif isinstance(node.left, A.Literal):
                const, other = node.left.value, right
            if const.__class__ is str:
                test = f"({other}.__class__ is str and {left} == {right})"
            elif const is None or const.__class__ is bool:
                test = f"({left} is {right})"
            else:
                test = f"_equal({left}, {right})"
            src.emit(depth, f"{target} = {test}" if node.op == "==" else f"{target} = not {test}")
            return
        src.emit(depth, f"if not (({left}.__class__ is int or {left}.__class__ is float) and "
                        f"({right}.__class__ is int or {right}.__class__ is float)):")
        src.emit(depth + 1, f"raise _cannot_order({src.value(node.op)}, {left}, {right})")
        assert node.op in A.COMPARE_OPS  # an operator of the grammar, never policy text
        src.emit(depth, f"{target} = {left} {node.op} {right}")
        return
    if isinstance(node, A.StringTest):
        left, right = _value(src, node.left, depth), _value(src, node.right, depth)
        if isinstance(node.right, A.Literal) and node.right.value.__class__ is str:
            src.emit(depth, f"if {left}.__class__ is not str:")
        else:
            src.emit(depth, f"if {left}.__class__ is not str or {right}.__class__ is not str:")
        src.emit(depth + 1, f"raise _not_strings({src.value(node.op)}, {left}, {right})")
        literal = isinstance(node.right, A.Literal)
        if node.op == "matches":
            pattern = node.right.value if literal else None
            if pattern is not None and "*" not in pattern:
                src.emit(depth, f"{target} = {left} == {right}")
                return
            if pattern is not None and pattern.count("*") == 1 and pattern.endswith("*"):
                test = f"{left}.startswith({src.value(pattern[:-1])})"
            else:
                test = f"_glob({right}).match({left})"
        elif node.op == "contains":
            test = f"{right} in {left}"
        else:
            assert node.op in ("startswith", "endswith")  # an operator of the grammar
            test = f"{left}.{node.op}({right})"
        if not literal:
            src.emit(depth, f"{target} = {test}")
            return
        # Against a literal the answer depends on the string alone, and the strings an element
        # holds repeat (tool names, effects): each loop remembers its answers for short strings,
        # a dictionary lookup instead of a call (str methods take their arguments slowly).
        memo = src.value({})
        src.emit(depth, "try:")
        src.emit(depth + 1, f"{target} = {memo}[{left}]")
        src.emit(depth, "except KeyError:")
        src.emit(depth + 1, f"{target} = {test}")
        src.emit(depth + 1, f"if len({left}) <= _MEMO_TEXT:")
        src.emit(depth + 2, f"if len({memo}) >= _MEMO_SIZE:")
        src.emit(depth + 3, f"{memo}.clear()")
        src.emit(depth + 2, f"{memo}[{left}] = {target}")
        return
    if isinstance(node, A.Has) and node.path.root == src.name:
        src.emit(depth, f"{target} = _has(e, {src.value(node.path.attrs)}, {src.value(node.name)})")
        return
    if isinstance(node, A.In):
        item, container = _value(src, node.item, depth), _value(src, node.container, depth)
        src.emit(depth, f"if {container}.__class__ is not list and {container}.__class__ is not _ListView:")
        src.emit(depth + 1, f"raise _not_a_list({container})")
        src.emit(depth, f"{target} = any(_equal({item}, m) for m in {container})")
        return
    # a path, a quantifier or anything else: its value, which must be a boolean
    var = _value(src, node, depth)
    src.emit(depth, f"{target} = _boolean_or_raise({var}, {src.value(what)})")


def _has(element: object, attrs: tuple[str, ...], name: str) -> bool:
    value = element
    for attr in attrs:
        if value.__class__ is not dict or attr not in value:
            return False
        value = value[attr]
    return value.__class__ is dict and name in value


_GLOBALS = {
    "_UNSET": _UNSET,
    "_MEMO_SIZE": _MEMO_SIZE,
    "_MEMO_TEXT": _MEMO_TEXT,
    "_ListView": ListView,
    "_missing": _missing,
    "_equal": equal,
    "_glob": glob,
    "_has": _has,
    "_boolean_or_raise": _boolean_or_raise,
    "_cannot_order": S.cannot_order,
    "_not_strings": S.not_strings,
    "_not_a_list": S.not_a_list,
    "_not_a_list_for": S.not_a_list_for,
}


def compile_loop(node: A.Quantifier, items_of: Callable, compile_expr: Callable) -> Callable | None:
    """The quantifier ``node`` (with a ``where``) as one function ``scope -> value``."""
    if node.where is None:
        return None
    src = _Source(node.name, compile_expr)
    _boolean(src, node.where, "r", 3, S.where(node.kind))
    body = src.lines
    constants = ", ".join(f"{name}={name}" for name in src.values)  # read as locals
    head = [
        f"def quantifier(scope, {constants}):" if constants else "def quantifier(scope):",
        "    items = items_of(scope)",
        "    if items.__class__ is not list and items.__class__ is not _ListView:",
        f"        raise _not_a_list_for({src.value(node.kind)}, items)",
    ]
    if src.reads_bound:
        head += [
            "    try:",
            "        bound = scope.bound",
            "    except AttributeError:",
            "        bound = scope.bound = {}",
        ]
    head += [f"    {name} = _UNSET" for name in src.invariants]
    if node.kind == "count":
        head.append("    n = 0")
    head.append("    if True:")  # the body is indented for a loop inside a block
    head.append("        for e in items:")
    if src.reads_bound:
        head.append(f"            bound[{src.value(node.name)}] = e")
    tail = {
        "any": ["            if r:", "                return True", "    return False"],
        "all": ["            if not r:", "                return False", "    return True"],
        "count": ["            if r:", "                n += 1", "    return n"],
    }[node.kind]
    text = "\n".join(head + body + tail) + "\n"
    namespace = {**_GLOBALS, **src.values, "items_of": items_of}
    exec(compile(text, "<nhipl quantifier>", "exec"), namespace)  # noqa: S102 - no policy text in the source
    return namespace["quantifier"]
