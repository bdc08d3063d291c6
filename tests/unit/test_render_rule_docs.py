"""Unit tests of docs/gen/render_rule_docs.py: the text-format parser and the Markdown renderer."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from venvstacks_testing.rule_docs import load_renderer

rrd = load_renderer()


def parse(text: str) -> rrd.Message:
    return rrd.parse_text_format(textwrap.dedent(text), "snippet.textproto")


# --- Parser ------------------------------------------------------------------------------------


def test_parses_nested_and_repeated_messages_in_order() -> None:
    message = parse(
        """
        rule_info {
          rule_name: "b_rule"
          attribute { name: "x" }
          attribute { name: "y" }
        }
        rule_info { rule_name: "a_rule" }
        file: "//pkg:defs.bzl"
        """
    )
    rules = message.messages("rule_info")
    assert [rule.string("rule_name") for rule in rules] == ["b_rule", "a_rule"]
    assert [attribute.string("name") for attribute in rules[0].messages("attribute")] == ["x", "y"]
    assert message.string("file") == "//pkg:defs.bzl"
    assert message.messages("func_info") == []
    assert message.string("module_docstring") == ""


def test_parses_scalars_enums_and_bools() -> None:
    message = parse(
        """
        type: LABEL_LIST
        mandatory: true
        nonconfigurable: False
        count: -12
        hex: 0x1F
        octal: 017
        ratio: 2.5e1
        neg_inf: -inf
        """
    )
    assert message.string("type") == "LABEL_LIST"
    assert message.flag("mandatory") is True
    assert message.flag("nonconfigurable") is False
    assert message.flag("absent") is False
    assert message.values("count") == [-12]
    assert message.values("hex") == [31]
    assert message.values("octal") == [15]
    assert message.values("ratio") == [25.0]
    assert message.values("neg_inf") == [float("-inf")]


def test_string_escapes_and_concatenation() -> None:
    message = parse(
        r"""
        doc_string: "it\'s \"quoted\"\n\ta\\b"
        octal_utf8: "caf\303\251"
        hex: "\x41\x42"
        unicode: "\u00e9 and \U0001F600"
        raw: 'single "quotes" and é'
        joined: "one " 'two ' "three"
        """
    )
    assert message.string("doc_string") == 'it\'s "quoted"\n\ta\\b'
    assert message.string("octal_utf8") == "café"
    assert message.string("hex") == "AB"
    assert message.string("unicode") == "é and \U0001f600"
    assert message.string("raw") == 'single "quotes" and é'
    assert message.string("joined") == "one two three"


def test_alternative_syntax_comments_separators_and_lists() -> None:
    message = parse(
        """
        # a comment
        origin_key: < name: "X"; file: "//a:b.bzl" >  # trailing comment
        group: { provider_name: ["A", "B"], }
        group { provider_name: [] }
        environ: "HOME", environ: "PATH"
        """
    )
    origin = message.message("origin_key")
    assert origin is not None
    assert (origin.string("name"), origin.string("file")) == ("X", "//a:b.bzl")
    groups = message.messages("group")
    assert [group.strings("provider_name") for group in groups] == [["A", "B"], []]
    assert message.strings("environ") == ["HOME", "PATH"]


def test_singular_field_reads_its_last_value() -> None:
    assert parse('name: "first"\nname: "second"\n').string("name") == "second"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('rule_info {\n  rule_name: "x"\n', "snippet.textproto:3:1: expected '}', found end of input"),
        ('name "x"', "snippet.textproto:1:6: expected ':' or '{' after field 'name', found '\"x\"'"),
        ("name: }", "snippet.textproto:1:7: expected a value, found '}'"),
        ("a { }\n}", "snippet.textproto:2:1: expected a field name, found '}'"),
        ("name: @", "snippet.textproto:1:7: unexpected character '@'"),
        ('name: "unterminated', "snippet.textproto:1:7: unexpected character '\"'"),
        ('name: "\\377"', 'string "\\377" is not UTF-8'),
    ],
)
def test_syntax_errors_say_where(text: str, expected: str) -> None:
    with pytest.raises(rrd.TextFormatError) as error:
        rrd.parse_text_format(text, "snippet.textproto")
    assert expected in str(error.value)


def test_field_of_the_wrong_kind_is_an_error() -> None:
    message = parse('rule_info { rule_name: "x" }\nname: "n"\n')
    with pytest.raises(rrd.TextFormatError, match="field 'rule_info': expected a string"):
        message.string("rule_info")
    with pytest.raises(rrd.TextFormatError, match="field 'name': expected a message"):
        message.messages("name")
    with pytest.raises(rrd.TextFormatError, match="field 'name': expected true or false"):
        message.flag("name")


# --- Renderer ----------------------------------------------------------------------------------

DEFS = r"""
rule_info {
  rule_name: "zeta_rule"
  doc_string: "Builds a zeta.\n\nSecond paragraph."
  attribute {
    name: "name"
    doc_string: "A unique name for this target."
    type: NAME
    mandatory: true
  }
  attribute {
    name: "deps"
    doc_string: "Things below.\nOne | two."
    type: LABEL_LIST
    provider_name_group {
      provider_name: "ZetaInfo"
      origin_key { name: "ZetaInfo" file: "@r//p:providers.bzl" }
    }
    provider_name_group { provider_name: "OtherInfo" provider_name: "ThirdInfo" }
    default_value: "[]"
  }
  attribute {
    name: "mode"
    type: STRING
    default_value: "\"fast\""
  }
  executable: true
}
rule_info {
  rule_name: "alpha_rule"
  doc_string: "Comes second: the extract's order, not sorted."
}
provider_info {
  provider_name: "ZetaInfo"
  doc_string: "What a zeta gives."
  field_info { name: "files" doc_string: "depset of File." }
}
func_info {
  function_name: "zeta_macro"
  parameter { name: "name" doc_string: "target name." mandatory: true }
  parameter { name: "srcs" doc_string: "sources." default_value: "[]" }
  parameter { name: "kwargs" doc_string: "passed on." }
  doc_string: "A macro.\n"
  return { doc_string: "nothing." }
}
module_docstring: "Public API."
file: "@r//p:defs.bzl"
"""

EXTENSIONS = r"""
module_docstring: "Extensions."
file: "@r//p:extensions.bzl"
module_extension_info {
  extension_name: "ext"
  doc_string: "Declares things."
  tag_class {
    tag_name: "thing"
    doc_string: "One thing."
    attribute { name: "name" type: NAME mandatory: true doc_string: "Its name." }
    attribute { name: "urls" type: STRING_LIST default_value: "[]" doc_string: "Mirrors." }
  }
}
"""


def render(*snippets: str) -> str:
    return rrd.render([parse(snippet) for snippet in snippets])


def test_page_starts_with_the_generated_comment_and_regenerate_command() -> None:
    first_line = render(DEFS).splitlines()[0]
    assert first_line.startswith("<!-- Generated by docs/gen/render_rule_docs.py")
    assert rrd.REGENERATE_COMMAND in first_line
    # The script's docstring gives the same command (wrapped onto two lines).
    assert rrd.REGENERATE_COMMAND in " ".join(rrd.__doc__.split())


def test_rule_signature_doc_and_attribute_table() -> None:
    page = render(DEFS)
    assert "```starlark\nzeta_rule(name, deps, mode)\n```" in page
    assert "Builds a zeta.\n\nSecond paragraph.\n" in page
    assert "An executable rule (`bazel run`)." in page
    assert "| Attribute | Description | Type | Mandatory | Default |" in page
    assert "| `name` | A unique name for this target. | Name | yes |  |" in page
    assert (
        "| `deps` | Things below.<br>One \\| two. | List of labels; providers: [`ZetaInfo`](#ZetaInfo),"
        " or `OtherInfo` and `ThirdInfo` | no | `[]` |"
    ) in page
    assert '| `mode` |  | String | no | `"fast"` |' in page


def test_symbols_keep_the_extract_order_grouped_by_kind() -> None:
    page = render(DEFS)
    headings = [line for line in page.splitlines() if line.startswith("#")]
    assert headings == [
        "# Rule reference",
        "## `@r//p:defs.bzl`",
        "### Rules",
        "#### `zeta_rule`",
        "#### `alpha_rule`",
        "### Macros and functions",
        "#### `zeta_macro`",
        "### Providers",
        "#### `ZetaInfo`",
    ]
    assert '<a id="zeta_rule"></a>' in page
    assert 'load("@r//p:defs.bzl", "zeta_rule", "alpha_rule", "zeta_macro", "ZetaInfo")' in page


def test_function_signature_parameters_and_return() -> None:
    page = render(DEFS)
    assert "zeta_macro(name, srcs = [], **kwargs)" in page
    assert "| `name` | target name. | yes |  |" in page
    assert "| `srcs` | sources. | no | `[]` |" in page
    assert "| `**kwargs` | passed on. | no |  |" in page
    assert "**Returns:** nothing." in page


def test_parameter_roles_when_the_extract_sets_them() -> None:
    snippet = """
    func_info {
      function_name: "f"
      parameter { name: "a" mandatory: true role: PARAM_ROLE_ORDINARY }
      parameter { name: "rest" role: PARAM_ROLE_VARARGS }
      parameter { name: "options" role: PARAM_ROLE_KWARGS }
    }
    """
    assert "f(a, *rest, **options)" in render(snippet)


def test_residual_parameters_without_roles() -> None:
    snippet = """
    func_info {
      function_name: "f"
      parameter { name: "args" }
      parameter { name: "kw" }
    }
    func_info {
      function_name: "g"
      parameter { name: "rest" }
    }
    """
    page = render(snippet)
    assert "f(*args, **kw)" in page
    assert "g(*rest)" in page


def test_provider_fields() -> None:
    page = render(DEFS)
    assert "What a zeta gives.\n\n| Field | Description |\n| --- | --- |\n| `files` | depset of File. |" in page


def test_module_extension_usage_and_tag_classes() -> None:
    page = render(DEFS, EXTENSIONS)
    assert '```starlark\next = use_extension("@r//p:extensions.bzl", "ext")\next.thing(name, urls)\n```' in page
    assert '<a id="ext.thing"></a>\n\n##### `ext.thing`\n\nOne thing.' in page
    assert "| `urls` | Mirrors. | List of strings | no | `[]` |" in page
    # No load() line for a file that only has extensions.
    assert 'load("@r//p:extensions.bzl"' not in page
    contents = [line for line in page.splitlines() if line.startswith("- ")]
    assert contents == [
        "- `@r//p:defs.bzl`: [`zeta_rule`](#zeta_rule), [`alpha_rule`](#alpha_rule), "
        "[`zeta_macro`](#zeta_macro), [`ZetaInfo`](#ZetaInfo)",
        "- `@r//p:extensions.bzl`: [`ext`](#ext)",
    ]


def test_long_signatures_wrap_one_argument_per_line() -> None:
    attributes = "".join(f'attribute {{ name: "attribute_number_{i}" type: STRING }}\n' for i in range(6))
    page = render(f'rule_info {{ rule_name: "wide" {attributes} }}')
    assert "wide(\n    attribute_number_0,\n" in page
    assert "    attribute_number_5,\n)\n```" in page


def test_code_spans_fence_backticks() -> None:
    assert rrd.code("") == ""
    assert rrd.code("plain") == "`plain`"
    assert rrd.code("a`b") == "``a`b``"
    assert rrd.code("`x`") == "`` `x` ``"


def test_render_is_deterministic_and_ends_with_one_newline() -> None:
    first = render(DEFS, EXTENSIONS)
    assert first == render(DEFS, EXTENSIONS)
    assert first.endswith("|\n") and not first.endswith("\n\n")


# --- Command line ------------------------------------------------------------------------------


def test_main_writes_the_page(tmp_path: Path) -> None:
    defs = tmp_path / "defs.textproto"
    extensions = tmp_path / "extensions.textproto"
    defs.write_text(DEFS)
    extensions.write_text(EXTENSIONS)
    output = tmp_path / "out" / "rules.md"
    assert rrd.main([str(output), str(defs), str(extensions)]) == 0
    assert output.read_text() == render(DEFS, EXTENSIONS)
    assert [path.name for path in output.parent.iterdir()] == ["rules.md"]


def test_main_reports_bad_input_on_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.textproto"
    bad.write_text('rule_info { rule_name: "x"\n')
    output = tmp_path / "rules.md"
    output.write_text("old\n")
    assert rrd.main([str(output), str(bad)]) == 1
    err = capsys.readouterr().err
    assert err == f"render_rule_docs: error: {bad}:2:1: expected '}}', found end of input\n"
    assert output.read_text() == "old\n"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["bad.textproto", "rules.md"]


def test_main_reports_a_missing_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert rrd.main([str(tmp_path / "rules.md"), str(tmp_path / "missing.textproto")]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"render_rule_docs: error: cannot read {tmp_path / 'missing.textproto'}: ")
    assert err.count("\n") == 1
    assert not (tmp_path / "rules.md").exists()
