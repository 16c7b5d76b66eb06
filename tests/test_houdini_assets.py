"""The Houdini assets as text: houdini/otls/proc_ml.hda (expanded HDA library), the shelf, the
package file, and their agreement with the SOP scripts and docs/houdini.md.

Houdini cannot run here, so the checks are of the documented formats and of the code:

* a strict parser of the dialog script language (HDK, "The Dialog Script Language") reads
  every asset's DialogScript: unknown keywords, missing fields or unbalanced braces fail;
* every parameter a SOP script reads (``hgeo.parm_value`` / ``hgeo.parm_string`` /
  ``hgeo.length_parm`` / ``parmTuple``, found in the script's syntax tree) exists in its asset with the same name,
  type and default; every asset parameter is read by the script or tagged UI-only; every
  menu lists exactly the values the code accepts;
* the expanded library has every section file the format needs, and ``Sections.list`` /
  ``INDEX__SECTION`` agree with the files (``hotl -t`` layout, as SideFX Labs ships it);
* each asset's PythonCook section, run like Python SOP code against the in-repo fake ``hou``
  with the parameter values its DialogScript defaults to, cooks a building;
* the package file parses and resolves to the repo's folders; docs/houdini.md names every
  parameter.
"""

from __future__ import annotations

import ast
import json
import re
import sys
import time
import types
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "fake_hou"))

import hou  # noqa: E402  (the fake)

from test_houdini_sop import box_polygons, building, output_arrays, voxel_points_geometry  # noqa: E402

LIBRARY = REPO / "houdini" / "otls" / "proc_ml.hda"
SCRIPTS = REPO / "hda_scripts"
PACKAGE = REPO / "houdini" / "packages" / "proc_ml.json"
SHELF = REPO / "houdini" / "toolbar" / "proc_ml.shelf"
DOC = REPO / "docs" / "houdini.md"
#: operator type -> the SOP script its PythonCook runs
ASSETS = {"proc_ml::predict_parts::1.0": "predict_parts_sop.py",
          "proc_ml::texture_building::1.0": "texture_building_sop.py",
          "proc_ml::export_training_data::1.0": "export_training_data_sop.py"}
#: sections every Python SOP asset here carries
REQUIRED_SECTIONS = ("DialogScript", "PythonCook", "TypePropertiesOptions", "Help", "Tools.shelf",
                     "CreateScript", "ExtraFileOptions")
INDEX_KEYS = ("Operator", "Label", "Path", "Icon", "Table", "License", "Extra", "User", "Inputs",
              "Subnet", "Python", "Empty", "Modified")


# -- the dialog script language ---------------------------------------------------------------
class DialogScriptError(Exception):
    pass


_TOKEN = re.compile(r'\s+|#[^\n]*|(?P<brace>[{}\[\]])|"(?P<str>(?:[^"\\\n]|\\.)*)"|(?P<word>[^\s{}\[\]"]+)')
_ESCAPES = {"\\": "\\", '"': '"', "n": "\n", "t": "\t"}
PARM_TYPES = {"toggle", "float", "integer", "string", "ordinal", "button", "file", "directory",
              "image", "geometry", "vector", "vector2", "intvector", "intvector2", "color", "label",
              "separator", "oppath"}
GROUPS = ("group", "groupsimple", "groupcollapsible", "groupradio")
STRING_TYPES = {"string", "file", "directory", "image", "geometry", "oppath"}


@dataclass
class Token:
    kind: str          # brace, str, word
    text: str
    line: int


def tokenize(text: str) -> list[Token]:
    tokens, pos, line = [], 0, 1
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            raise DialogScriptError(f"line {line}: cannot read {text[pos:pos + 20]!r}")
        kind = match.lastgroup
        if kind == "str":
            raw, value, i = match.group("str"), [], 0
            while i < len(raw):
                if raw[i] == "\\":
                    if raw[i + 1] not in _ESCAPES:
                        raise DialogScriptError(f"line {line}: unknown escape \\{raw[i + 1]}")
                    value.append(_ESCAPES[raw[i + 1]])
                    i += 2
                else:
                    value.append(raw[i])
                    i += 1
            tokens.append(Token("str", "".join(value), line))
        elif kind is not None:
            tokens.append(Token(kind, match.group(kind), line))
        line += match.group(0).count("\n")
        pos = match.end()
    return tokens


@dataclass
class Parm:
    name: str
    label: str
    type: str
    default: list
    size: int = 1
    help: str = ""
    range: tuple | None = None               # ((min, hard), (max, hard))
    tags: dict = field(default_factory=dict)
    menu: list = field(default_factory=list)  # (token, label)
    flags: set = field(default_factory=set)
    conditions: dict = field(default_factory=dict)
    group: str = ""

    def typed_default(self):
        if self.type == "intvector":
            return tuple(int(v) for v in self.default)
        value = self.default[0]
        if self.type in ("integer", "toggle"):
            return int(value)
        if self.type == "float":
            return float(value)
        return value


@dataclass
class Operator:
    name: str = ""
    script: str = ""
    label: str = ""
    help: list = field(default_factory=list)
    inputlabels: dict = field(default_factory=dict)
    outputlabels: dict = field(default_factory=dict)
    parms: list = field(default_factory=list)

    def parm(self, name: str) -> Parm:
        return next(p for p in self.parms if p.name == name)


class _Reader:
    def __init__(self, tokens: list[Token]):
        self.tokens, self.i = tokens, 0

    def peek(self) -> Token | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def next(self, what: str) -> Token:
        token = self.peek()
        if token is None:
            raise DialogScriptError(f"end of file while reading {what}")
        self.i += 1
        return token

    def expect(self, text: str) -> None:
        token = self.next(f"'{text}'")
        if token.kind != "brace" or token.text != text:
            raise DialogScriptError(f"line {token.line}: expected '{text}', got {token.text!r}")

    def value(self, what: str) -> str:
        token = self.next(what)
        if token.kind == "brace":
            raise DialogScriptError(f"line {token.line}: {what} must be a word or string")
        return token.text

    def strings(self, what: str) -> list[str]:
        self.expect("{")
        values = []
        while (token := self.next(what)).text != "}" or token.kind != "brace":
            if token.kind == "brace":
                raise DialogScriptError(f"line {token.line}: unexpected '{token.text}' in {what}")
            values.append(token.text)
        return values


def _number(text: str, line: int) -> tuple[float, bool]:
    hard = text.endswith("!")
    try:
        return float(text.rstrip("!")), hard
    except ValueError:
        raise DialogScriptError(f"line {line}: range bound {text!r} is not a number") from None


def _parm(reader: _Reader, group: str) -> Parm:
    fields: dict = {"tags": {}, "menu": [], "flags": set(), "conditions": {}, "group": group}
    reader.expect("{")
    while True:
        token = reader.next("parm")
        if token.kind == "brace" and token.text == "}":
            break
        key = token.text
        single = {"name", "label", "type", "size", "help", "export"}
        if key in single and key in fields:
            raise DialogScriptError(f"line {token.line}: '{key}' given twice")
        if key in ("name", "label", "type", "help", "export"):
            fields[key] = reader.value(key)
        elif key == "size":
            fields["size"] = int(reader.value("size"))
        elif key == "default":
            fields["default"] = reader.strings("default")
        elif key == "range":
            bounds = reader.strings("range")
            if len(bounds) != 2:
                raise DialogScriptError(f"line {token.line}: range needs two bounds")
            fields["range"] = tuple(_number(b, token.line) for b in bounds)
        elif key == "parmtag":
            pair = reader.strings("parmtag")
            if len(pair) != 2:
                raise DialogScriptError(f"line {token.line}: parmtag needs a key and a value")
            fields["tags"][pair[0]] = pair[1]
        elif key in ("menu", "menureplace", "menutoggle"):
            items = reader.strings(key)
            if len(items) % 2:
                raise DialogScriptError(f"line {token.line}: {key} needs token/label pairs")
            fields["menu"] = list(zip(items[::2], items[1::2]))
            fields["flags"].add(key)
        elif key in ("joinnext", "nolabel", "invisible"):
            fields["flags"].add(key)
        elif key in ("disablewhen", "hidewhen"):
            fields["conditions"][key] = reader.value(key)
        else:
            raise DialogScriptError(f"line {token.line}: unknown parm keyword '{key}'")
    for required in ("name", "label", "type", "default"):
        if required not in fields:
            raise DialogScriptError(f"parm {fields.get('name', '?')}: no '{required}'")
    if fields["type"] not in PARM_TYPES:
        raise DialogScriptError(f"parm {fields['name']}: unknown type '{fields['type']}'")
    if len(fields["default"]) != fields.get("size", 1):
        raise DialogScriptError(f"parm {fields['name']}: {len(fields['default'])} defaults for "
                                f"size {fields.get('size', 1)}")
    return Parm(**fields)


def _group(reader: _Reader, op: Operator, path: str) -> None:
    reader.expect("{")
    name = label = None
    while True:
        token = reader.next("group")
        if token.kind == "brace" and token.text == "}":
            break
        if token.text in ("name", "label", "disablewhentab", "hidewhentab"):
            value = reader.value(token.text)
            name = value if token.text == "name" else name
            label = value if token.text == "label" else label
        elif token.text == "grouptag":
            reader.strings("grouptag")
        elif token.text == "parm":
            op.parms.append(_parm(reader, f"{path}/{label}" if path else label))
        elif token.text in GROUPS:
            _group(reader, op, f"{path}/{label}" if path else label)
        else:
            raise DialogScriptError(f"line {token.line}: unknown group keyword '{token.text}'")
    if not name or not label:
        raise DialogScriptError(f"a group without name or label ({name!r}, {label!r})")


def parse_dialog_script(text: str) -> Operator:
    reader, op = _Reader(tokenize(text)), Operator()
    reader.expect("{")
    while True:
        token = reader.next("operator")
        if token.kind == "brace" and token.text == "}":
            break
        key = token.text
        if key in ("name", "script", "label"):
            if getattr(op, key):
                raise DialogScriptError(f"line {token.line}: '{key}' given twice")
            setattr(op, key, reader.value(key))
        elif key == "help":
            op.help = reader.strings("help")
        elif key in ("inputlabel", "outputlabel"):
            index = int(reader.value(key))
            getattr(op, key + "s")[index] = reader.value(key)
        elif key == "parm":
            op.parms.append(_parm(reader, ""))
        elif key in GROUPS:
            _group(reader, op, "")
        else:
            raise DialogScriptError(f"line {token.line}: unknown operator keyword '{key}'")
    if reader.peek() is not None:
        raise DialogScriptError(f"line {reader.peek().line}: text after the closing brace")
    names = [p.name for p in op.parms]
    if len(names) != len(set(names)):
        raise DialogScriptError(f"parameter names repeat: {names}")
    return op


def test_the_parser_is_strict():
    good = '{ name a label "A" parm { name "x" label "X" type float default { "0" } } }'
    assert parse_dialog_script(good).parm("x").typed_default() == 0.0
    for bad, message in (
            ('{ name a parm { name "x" label "X" type flaot default { "0" } } }', "unknown type"),
            ('{ name a parm { name "x" label "X" type float } }', "no 'default'"),
            ('{ name a parm { name "x" label "X" type float default { "0" } colour red } }',
             "unknown parm keyword 'colour'"),
            ('{ name a parm { name "x" label "X" type float default { "0" } }', "end of file"),
            ('{ name a } }', "after the closing brace"),
            ('{ name a parm { name "x" label "X" type intvector size 3 default { "1" } } }',
             "1 defaults for size 3"),
            ('{ name a parm { name "x" label "X" type string default { "\\q" } } }', "unknown escape")):
        with pytest.raises(DialogScriptError, match=message):
            parse_dialog_script(bad)


# -- the library on disk --------------------------------------------------------------------------
def section_dir_name(section: str) -> str:
    """How ``hotl -t`` names a section's file: '_' -> '__', ':' -> '_8', '/' -> '_1'."""
    return section.replace("_", "__").replace(":", "_8").replace("/", "_1")


def read_sections_list(folder: Path) -> dict[str, str]:
    lines = (folder / "Sections.list").read_text(encoding="utf-8").split("\n")
    assert lines[0] == '""' and lines[-1] == "", f"{folder}/Sections.list: header or last newline"
    entries = [line.split("\t") for line in lines[1:-1]]
    assert all(len(e) == 2 for e in entries), f"{folder}/Sections.list: 'file<TAB>section' lines"
    files = {file: section for file, section in entries}
    assert len(files) == len(entries), f"{folder}/Sections.list repeats a file"
    return files


def read_index() -> list[dict]:
    text = (LIBRARY / "INDEX__SECTION").read_text(encoding="utf-8")
    assert text.endswith("\n\n")
    blocks = []
    for chunk in text.strip("\n").split("\n\n"):
        fields = {}
        for line in chunk.split("\n"):
            key, sep, value = line.partition(":")
            assert sep and line[len(key) + 1:].startswith(" "), f"INDEX__SECTION line {line!r}"
            fields[key] = value.strip()
        blocks.append(fields)
    return blocks


def operator_dirs() -> dict[str, Path]:
    """operator type name -> its section folder (from the library's Sections.list)."""
    found = {}
    for file, section in read_sections_list(LIBRARY).items():
        if "/" in section:
            namespace, _, rest = section.partition("::Sop/")
            found[f"{namespace}::{rest}"] = LIBRARY / file
    return found


@pytest.fixture(scope="module")
def operators() -> dict[str, Operator]:
    return {name: parse_dialog_script((folder / "DialogScript").read_text(encoding="utf-8"))
            for name, folder in operator_dirs().items()}


def test_library_layout_sections_and_index_agree():
    files = read_sections_list(LIBRARY)
    assert files["INDEX__SECTION"] == "INDEX_SECTION"
    assert files["houdini.hdalibrary"] == "houdini.hdalibrary"
    assert (LIBRARY / "houdini.hdalibrary").read_bytes() == b""
    assert {p.name for p in LIBRARY.iterdir()} == set(files) | {"Sections.list"}
    ops = {f: s for f, s in files.items() if s not in ("INDEX_SECTION", "houdini.hdalibrary")}
    for file, section in ops.items():
        assert re.fullmatch(r"proc_ml::Sop/\w+::1\.0", section), section
        assert file == section_dir_name(section) and (LIBRARY / file).is_dir()
    index = read_index()
    assert [block["Operator"] for block in index] == list(operator_dirs())
    assert set(operator_dirs()) == set(ASSETS)
    for block, section in zip(index, ops.values()):
        assert list(block) == list(INDEX_KEYS)
        assert block["Path"] == f"oplib:/{section}?{section}"
        assert (block["Table"], block["Inputs"], block["Subnet"], block["Python"], block["Empty"]) == (
            "Sop", "1 to 1", "false", "true", "false")
        time.strptime(block["Modified"], "%a %b %d %H:%M:%S %Y")


def test_every_asset_has_the_sections_of_a_python_sop(operators):
    index = {block["Operator"]: block for block in read_index()}
    for name, folder in operator_dirs().items():
        files = read_sections_list(folder)
        assert all(file == section for file, section in files.items()), folder
        assert {p.name for p in folder.iterdir()} == set(files) | {"Sections.list"}, folder
        assert set(REQUIRED_SECTIONS) <= set(files), folder
        op = operators[name]
        assert (op.name, op.label) == (name, index[name]["Label"])
        assert op.inputlabels.get(1) and op.outputlabels.get(1)
        # TypePropertiesOptions: "Key := value;" lines; parameters come from the DialogScript
        options = (folder / "TypePropertiesOptions").read_text().splitlines()
        assert all(re.fullmatch(r"\w+ := [^;]+;", line) for line in options)
        assert "UseDSParms := 1;" in options
        extra = json.loads((folder / "ExtraFileOptions").read_text())
        assert all(key.split("/")[0] in files for key in extra)
        table = name.replace("::", "::Sop/", 1)
        create = (folder / "CreateScript").read_text()
        assert f"Creation script for {name} operator" in create and f"({table})" in create
        tool = ET.parse(folder / "Tools.shelf").getroot().find("tool")
        assert tool.get("name") == "$HDA_DEFAULT_TOOL" and tool.findtext("toolSubmenu") == "proc-ml"
        assert "soptoolutils.genericTool(kwargs, '$HDA_NAME')" in tool.findtext("script")
        assert {c.findtext("contextNetType") or c.findtext("contextOpType")
                for c in tool.findall("toolMenuContext")} == {"SOP", "$HDA_TABLE_AND_NAME"}


def test_python_cook_runs_the_shared_script(operators):
    for name, folder in operator_dirs().items():
        tree = ast.parse((folder / "PythonCook").read_text(), f"{name}/PythonCook")
        calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call)
                 and getattr(n.func, "id", None) == "run_script"]
        assert len(calls) == 1 and calls[0].args[0].value == ASSETS[name]
        assert (SCRIPTS / ASSETS[name]).is_file()
        # a callback names a function of the asset's PythonModule
        module = folder / "PythonModule"
        functions = ({n.name for n in ast.parse(module.read_text()).body
                      if isinstance(n, ast.FunctionDef)} if module.exists() else set())
        for parm in operators[name].parms:
            callback = parm.tags.get("script_callback", "")
            for called in re.findall(r"hou\.phm\(\)\.(\w+)\(", callback):
                assert called in functions, (name, parm.name, called)


# -- what the SOP scripts read ----------------------------------------------------------------------
@dataclass
class Read:
    name: str
    kind: str            # string, toggle, integer, float, intvector
    default: object
    line: int


def _default_value(node: ast.expr, hgeo):
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Attribute) and getattr(node.value, "id", None) == "hgeo":
        return getattr(hgeo, node.attr)
    if isinstance(node, ast.Tuple):
        return tuple(_default_value(e, hgeo) for e in node.elts)
    raise AssertionError(f"line {node.lineno}: default {ast.dump(node)} is not a literal")


def script_reads(script: Path) -> dict[str, Read]:
    """Every parameter the script reads, with the kind of value and the default it assumes."""
    import proc_ml.dcc.houdini as hgeo

    tree = ast.parse(script.read_text(encoding="utf-8"))
    parents = {child: parent for parent in ast.walk(tree) for child in ast.iter_child_nodes(parent)}
    reads: dict[str, Read] = {}

    def add(read: Read) -> None:
        old = reads.setdefault(read.name, read)
        assert (old.kind, old.default) == (read.kind, read.default), (
            f"{script.name}: '{read.name}' read as {old.kind} {old.default!r} (line {old.line}) "
            f"and {read.kind} {read.default!r} (line {read.line})")

    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
            continue
        attr = node.func.attr
        if attr in ("parm_value", "parm_string"):
            name, default = node.args[1].value, _default_value(node.args[2], hgeo)
            wrapper = getattr(getattr(parents.get(node), "func", None), "id", None)
            if attr == "parm_string":
                kind = "string"
            elif wrapper == "bool":
                kind = "toggle"
            elif wrapper == "float" or isinstance(default, float):
                kind, default = "float", float(default)
            else:
                kind = "integer"
            add(Read(name, kind, default, node.lineno))
        elif attr == "length_parm":     # a float length in scene units, read in metres
            add(Read(node.args[1].value, "float", float(_default_value(node.args[2], hgeo)), node.lineno))
        elif attr == "output_path":     # a string parameter naming a file or folder to write
            add(Read(node.args[1].value, "string", "", node.lineno))
        elif attr == "parmTuple":
            name = node.args[0].value
            function = node
            while not isinstance(function, ast.FunctionDef):
                function = parents[function]
            fallbacks = [n.body for n in ast.walk(function) if isinstance(n, ast.IfExp)
                         and isinstance(n.test, ast.Compare) and isinstance(n.test.ops[0], ast.Is)
                         and getattr(n.test.comparators[0], "value", 0) is None]
            assert len(fallbacks) == 1, f"{script.name}:{node.lineno}: parmTuple without a default"
            default = _default_value(fallbacks[0], hgeo)
            assert all(isinstance(v, int) for v in default)
            add(Read(name, "intvector", default, node.lineno))
        elif attr in ("parm", "evalParm", "parmTuples", "evalParmTuple"):
            raise AssertionError(f"{script.name}:{node.lineno}: parameter read outside the "
                                 f"hgeo adapters; extend this test to follow it")
    return reads


def _hda_kind(parm: Parm) -> str:
    if parm.type in STRING_TYPES:
        return "string"
    if parm.type == "intvector" and parm.size == 3:
        return "intvector"
    return parm.type


def test_scripts_and_assets_agree_on_every_parameter(operators):
    for name, script in ASSETS.items():
        op, reads = operators[name], script_reads(SCRIPTS / script)
        assert reads, script
        hda = {p.name: p for p in op.parms}
        for read in reads.values():
            assert read.name in hda, f"{script} reads '{read.name}', {name} has no such parameter"
            parm = hda[read.name]
            assert _hda_kind(parm) == read.kind, (name, read.name, parm.type, read.kind)
            assert parm.typed_default() == read.default, (name, read.name, parm.default, read.default)
        for parm in op.parms:
            if parm.name not in reads:
                assert "proc_ml_ui_only" in parm.tags, f"{name}: '{parm.name}' is read by nothing"
                assert parm.type == "button" and parm.tags.get("script_callback")
        for parm in op.parms:
            assert parm.help and parm.label, (name, parm.name)
            if parm.range:
                (low, hard_low), (high, hard_high) = parm.range
                values = np.atleast_1d(np.asarray(parm.typed_default(), dtype=float))
                assert (low <= values).all() and (not hard_high or (values <= high).all())


def _accepted_values() -> dict[str, tuple]:
    """What the code accepts for each string menu (the constants it validates against)."""
    from proc_ml.dcc.predict import ENTRANCE_CHOICES, STREET_SIDES, SYMMETRY_CHOICES
    from proc_ml.runtime.providers import DEVICES
    from proc_ml.textures.palette import MATERIALS
    from proc_ml.voxelize import UP_AXES

    tree = ast.parse((SCRIPTS / "predict_parts_sop.py").read_text())
    input_types = next(ast.literal_eval(n.value) for n in tree.body if isinstance(n, ast.Assign)
                       and getattr(n.targets[0], "id", None) == "INPUT_TYPES")
    return {"device": tuple(DEVICES), "inputtype": input_types, "upaxis": tuple(UP_AXES),
            "streetside": tuple(STREET_SIDES), "material": tuple(MATERIALS),
            "symmetry": tuple(SYMMETRY_CHOICES), "entrance": tuple(ENTRANCE_CHOICES)}


def test_menus_list_the_values_the_code_accepts(operators):
    accepted = _accepted_values()
    menus = 0
    for name, op in operators.items():
        for parm in op.parms:
            if not parm.menu:
                continue
            menus += 1
            assert parm.type == "string" and "menu" in parm.flags, (name, parm.name)
            assert parm.name in accepted, f"{name}: no accepted-values source for '{parm.name}'"
            tokens = [token for token, _ in parm.menu]
            assert len(tokens) == len(set(tokens)), (name, parm.name)
            assert set(tokens) == set(accepted[parm.name]), (name, parm.name, tokens)
            assert parm.typed_default() in accepted[parm.name]
    assert menus == 9
    window = operators["proc_ml::predict_parts::1.0"].parm("windowperiod")
    assert window.range == ((1.0, True), (3.0, True))       # style_vector takes 1, 2 or 3


# -- the assets cook ------------------------------------------------------------------------------
def asset_node(op: Operator, geometry, **overrides):
    """A fake node with the asset's parameters at their DialogScript defaults."""
    values = {p.name: p.typed_default() for p in op.parms if p.type not in ("button", "separator")}
    unknown = set(overrides) - set(values)
    assert not unknown, unknown
    values.update(overrides)
    return hou.make_sop_node(values, geometry)


def python_cook(name: str):
    return compile((operator_dirs()[name] / "PythonCook").read_text(), f"{name}/PythonCook", "exec")


@pytest.fixture
def package_scripts(monkeypatch):
    monkeypatch.setenv("PROC_ML_SCRIPTS", str(SCRIPTS))


def test_assets_cook_with_their_default_parameters(operators, tiny_massing_unet_onnx, tmp_path,
                                                   package_scripts, monkeypatch):
    b = building()
    predict = asset_node(operators["proc_ml::predict_parts::1.0"],
                         voxel_points_geometry(b.occupancy), model=str(tiny_massing_unet_onnx))
    hou.cook(predict, python_cook("proc_ml::predict_parts::1.0"))
    from proc_ml.grid import exterior_faces
    labelled = predict.geometry().freeze(read_only=True)
    assert labelled.intrinsicValue("primitivecount") == int(exterior_faces(b.occupancy).sum())
    names = output_arrays(labelled)["parts"]

    texture = asset_node(operators["proc_ml::texture_building::1.0"], labelled, procedural=1,
                         atlas=str(tmp_path / "atlas.png"))
    hou.cook(texture, python_cook("proc_ml::texture_building::1.0"))
    out = texture.geometry()
    assert out.findPointAttrib("uv") is not None and (tmp_path / "atlas.png").is_file()
    assert set(out.primStringAttribValues("texture_path")) == {str(tmp_path / "atlas.png")}

    export = asset_node(operators["proc_ml::export_training_data::1.0"], labelled,
                        output=str(tmp_path / "ds"))
    hou.cook(export, python_cook("proc_ml::export_training_data::1.0"))
    from proc_ml.datasets import open_dataset
    ds = open_dataset(tmp_path / "ds")
    assert ds.manifest["count"] == 1 and list(ds.parts) == names

    # Update Index off (a PDG work item), then the Rebuild Index button's module function.
    second = asset_node(operators["proc_ml::export_training_data::1.0"], labelled,
                        output=str(tmp_path / "ds"), buildingid=1, updateindex=0)
    hou.cook(second, python_cook("proc_ml::export_training_data::1.0"))
    assert open_dataset(tmp_path / "ds").manifest["count"] == 1
    module = types.ModuleType("proc_ml_export_hda")
    module.__dict__["hou"] = hou
    exec(compile((operator_dirs()["proc_ml::export_training_data::1.0"] / "PythonModule").read_text(),
                 "PythonModule", "exec"), module.__dict__)
    monkeypatch.setattr(hou, "isUIAvailable", lambda: False, raising=False)
    with hou.cooking(second):
        manifest = module.rebuild_index(second)
    assert manifest["count"] == 2 and open_dataset(tmp_path / "ds").manifest["count"] == 2
    broken = asset_node(operators["proc_ml::export_training_data::1.0"], labelled, output="")
    with hou.cooking(broken), pytest.raises(hou.OperationFailed, match="no output folder set"):
        module.rebuild_index(broken)


def test_python_cook_reports_a_missing_proc_ml_as_a_node_error(operators, monkeypatch):
    monkeypatch.setitem(sys.modules, "proc_ml.dcc.hda", None)      # "import" fails
    node = asset_node(operators["proc_ml::predict_parts::1.0"], box_polygons([((0, 0, 0), (2, 2, 2))]))
    with pytest.raises(hou.NodeError, match="proc-ml is not importable from Houdini's Python"):
        hou.cook(node, python_cook("proc_ml::predict_parts::1.0"))


# -- help cards, shelf, package file, docs ----------------------------------------------------------
def test_help_cards_document_every_parameter(operators):
    for name, op in operators.items():
        text = (operator_dirs()[name] / "Help").read_text()
        assert text.startswith(f"= {op.label} =\n") and f"#internal: {name}\n" in text
        for section in ("@inputs", "@outputs", "@parameters"):
            assert f"\n{section}\n" in text, (name, section)
        for parm in op.parms:
            assert f"\n{parm.label}:\n    #id: {parm.name}\n" in text, (name, parm.name)


def test_shelf_tool_builds_the_three_nodes(operators):
    root = ET.parse(SHELF).getroot()
    tools = {tool.get("name"): tool for tool in root.findall("tool")}
    members = [m.get("name") for m in root.find("toolshelf").findall("memberTool")]
    assert members == list(tools) == ["proc_ml_building_network"]
    script = tools["proc_ml_building_network"].findtext("script")
    tree = ast.parse(script)
    created = {}
    for node in ast.walk(tree):
        if (isinstance(node, ast.Assign) and isinstance(node.value, ast.Call)
                and getattr(node.value.func, "attr", None) == "createNode"):
            created[node.targets[0].id] = node.value.args[0].value
    assert set(ASSETS) <= set(created.values())
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", None) in ("parm", "parmTuple"):
            variable, parm = node.func.value.id, node.args[0].value
            if created[variable] in operators:
                assert parm in {p.name for p in operators[created[variable]].parms}, (variable, parm)


def _expand(value: str, env: dict) -> str:
    def replace(match):
        name = match.group(1) or match.group(2)
        assert name in env, f"package file uses ${name} before setting it"
        return env[name]
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", replace, value)


def resolve_package(path: Path) -> dict:
    """The package file's variables as Houdini sets them (HOUDINI_PACKAGE_PATH = its folder)."""
    data = json.loads(path.read_text(encoding="utf-8"))
    known = {"load_package_once", "enable", "version", "env", "path", "hpath", "requires",
             "recommends", "package_path", "process_order", "show"}
    assert set(data) <= known, set(data) - known
    env = {"HOUDINI_PACKAGE_PATH": str(path.parent)}
    for entry in data["env"]:
        (var, value), = entry.items()
        if isinstance(value, dict):
            assert value["method"] in ("append", "prepend", "replace")
            value = value["value"]
        values = value if isinstance(value, list) else [value]
        expanded = [str(Path(_expand(v, env)).resolve()) for v in values]
        env[var] = expanded[0] if len(expanded) == 1 else expanded
    env["HOUDINI_PATH"] = str(Path(_expand(data["path"], env)).resolve())
    return {"data": data, "env": env}


def test_package_file_resolves_to_the_repo(monkeypatch):
    package = resolve_package(PACKAGE)
    data, env = package["data"], package["env"]
    assert data["load_package_once"] is True
    assert re.fullmatch(r"houdini_version >= '(\d+)\.(\d+)'", data["enable"])
    assert env["PROC_ML"] == str(REPO)
    assert env["HOUDINI_PATH"] == str(REPO / "houdini")
    assert (REPO / "houdini" / "otls" / "proc_ml.hda" / "INDEX__SECTION").is_file()
    assert (REPO / "houdini" / "toolbar" / "proc_ml.shelf").is_file()
    assert env["PYTHONPATH"][0] == str(REPO)                   # proc_ml and exporters import
    monkeypatch.setenv("PROC_ML_SCRIPTS", env["PROC_ML_SCRIPTS"])
    from proc_ml.dcc.hda import scripts_folder
    assert scripts_folder() == SCRIPTS
    assert all((scripts_folder() / script).is_file() for script in ASSETS.values())


def test_houdini_doc_names_every_asset_and_parameter(operators):
    doc = DOC.read_text(encoding="utf-8")
    enable = json.loads(PACKAGE.read_text())["enable"]
    assert "houdini/packages/proc_ml.json" in doc and enable.split("'")[1] in doc
    for name, op in operators.items():
        assert f"`{name}`" in doc and op.label in doc
        for parm in op.parms:
            assert f"`{parm.name}`" in doc, (name, parm.name)
    for url in ("https://www.sidefx.com/docs/houdini/ref/plugins.html",
                "https://www.sidefx.com/docs/houdini/ref/utils/hotl.html",
                "https://www.sidefx.com/docs/houdini/hom/pythonsop.html"):
        assert url in doc
