#!/usr/bin/env python3
"""Generates children.rs: the child nodes of every pg_query parse-tree node, named by field.

pg_query's own tree walk visits only the nodes it needs for its table and function lists (and not
PREPARE); the classifier must see every node, so this script reads the prost-generated
`src/protobuf.rs` of the pg_query crate in use and writes one match arm per node type. Run it from
anywhere inside the workspace after changing the pg_query version:

    python3 crates/portcullis-postgres/src/classify/gen_children.py

It finds the crate through `cargo metadata`, rewrites children.rs beside this script and formats it. A new node
type in a newer pg_query makes the generated match non-exhaustive, so the build fails until this is
rerun; a new field of an existing type is found only by rerunning it.
"""

import json
import os
import re
import subprocess
import sys


def pg_query_source():
    meta = json.loads(
        subprocess.check_output(["cargo", "metadata", "--format-version", "1"], text=True)
    )
    for package in meta["packages"]:
        if package["name"] == "pg_query":
            root = os.path.dirname(package["manifest_path"])
            return package["version"], os.path.join(root, "src", "protobuf.rs")
    sys.exit("pg_query is not a dependency of this workspace")


def parse(source):
    enum = re.search(r"pub enum Node \{(.*?)\n    \}", source, re.S)
    variants = re.findall(
        r"\n\s+(\w+)\(\s*(?:::prost::alloc::boxed::Box<\s*)?super::(\w+)\s*>?,?\s*\)",
        enum.group(1),
    )
    structs = {}
    for name, body in re.findall(r"pub struct (\w+) \{(\}|.*?\n\})", source, re.S):
        flat = " ".join(body.rstrip("}").split())
        fields = []
        for attrs, field, ty in re.findall(
            r"#\[prost\(message,([^\]]*)\)\] pub (r#\w+|\w+): ([^,]*),", flat
        ):
            ty = ty.replace(" ", "")
            repeated = "repeated" in attrs
            inner = re.sub(
                r"::prost::alloc::boxed::Box<|::core::option::Option<|::prost::alloc::vec::Vec<|>",
                "",
                ty,
            )
            fields.append((field, inner, repeated, "Box<" in ty))
        structs[name] = fields
    return variants, structs


def emit_fields(structs, node_types, ty, var, outer, indent):
    """Lines visiting the fields of `var` (a `ty`). Fields of a message type that is not itself a node
    (OnConflictClause, JsonAggConstructor) are visited in place and reported under `outer`, the name
    of the field that holds them."""
    lines = []
    for field, inner, repeated, boxed in structs[ty]:
        name = outer or (field[2:] if field.startswith("r#") else field)
        if inner == "Node":
            if repeated:
                lines.append(f'{indent}many(f, "{name}", &{var}.{field});')
            else:
                deref = "as_deref" if boxed else "as_ref"
                lines.append(f'{indent}one(f, "{name}", {var}.{field}.{deref}());')
            continue
        target = node_types.get(inner)
        if target is None and inner not in structs:
            sys.exit(f"{ty}.{field}: unknown type {inner}")
        child = f"{var}_{field.replace('r#', '')}"
        head = f"{indent}for {child} in &{var}.{field} {{" if repeated else f"{indent}if let Some({child}) = &{var}.{field} {{"
        lines.append(head)
        if target is not None:
            lines.append(f'{indent}    f("{name}", NodeRef::{target}({child}));')
        else:
            lines.extend(emit_fields(structs, node_types, inner, child, name, indent + "    "))
        lines.append(f"{indent}}}")
    return lines


def generate(version, variants, structs):
    node_types = {ty: variant for variant, ty in variants}
    out = []
    out.append("//! The child nodes of every parse-tree node, by field name (generated; see gen_children.py).")
    out.append("//!")
    out.append(f"//! @generated from pg_query {version} src/protobuf.rs by gen_children.py; do not edit.")
    out.append("")
    out.append("use pg_query::NodeRef;")
    out.append("use pg_query::protobuf::Node;")
    out.append("")
    out.append("/// Calls `f(field, child)` for every child node of `parent`, in field order.")
    out.append("pub(super) fn for_each_child<'a>(parent: NodeRef<'a>, f: &mut dyn FnMut(&'static str, NodeRef<'a>)) {")
    out.append("    match parent {")
    leaves = []
    for variant, ty in variants:
        if ty not in structs:
            sys.exit(f"no struct for {ty}")
        lines = emit_fields(structs, node_types, ty, "n", None, "            ")
        if lines:
            out.append(f"        NodeRef::{variant}(n) => {{")
            out.extend(lines)
            out.append("        }")
        else:
            leaves.append(variant)
    out.append("        " + "\n        | ".join(f"NodeRef::{v}(_)" for v in leaves) + " => {}")
    out.append("    }")
    out.append("}")
    out.append("")
    out.append("fn one<'a>(f: &mut dyn FnMut(&'static str, NodeRef<'a>), field: &'static str, child: Option<&'a Node>) {")
    out.append("    if let Some(inner) = child.and_then(|child| child.node.as_ref()) {")
    out.append("        f(field, inner.to_ref());")
    out.append("    }")
    out.append("}")
    out.append("")
    out.append("fn many<'a>(f: &mut dyn FnMut(&'static str, NodeRef<'a>), field: &'static str, children: &'a [Node]) {")
    out.append("    for child in children {")
    out.append("        one(f, field, Some(child));")
    out.append("    }")
    out.append("}")
    out.append("")
    return "\n".join(out)


def main():
    version, path = pg_query_source()
    with open(path) as source:
        variants, structs = parse(source.read())
    target = os.path.join(os.path.dirname(os.path.abspath(__file__)), "children.rs")
    with open(target, "w") as out:
        out.write(generate(version, variants, structs))
    # rustfmt finds the workspace's rustfmt.toml from the file's directory.
    subprocess.check_call(["rustfmt", "--edition", "2024", target])
    print(f"wrote {target} ({len(variants)} node types, pg_query {version})")


if __name__ == "__main__":
    main()
