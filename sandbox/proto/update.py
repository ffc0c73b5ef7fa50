#!/usr/bin/env python3
"""Regenerates what the sandbox decodes protobuf request bodies with.

Usage: update.py API_CHECKOUT APIMACHINERY_CHECKOUT   (git checkouts of kubernetes/api and
kubernetes/apimachinery at the same release, e.g. tags v0.33.9)

- copies the groups' generated.proto files under k8s.io/ (verbatim),
- runs `protoc` over them into k8s.pb (a FileDescriptorSet, no source info),
- writes pointers.txt: the fields that are pointers in the Go types. Go's protobuf encoder
  writes a non-pointer field even when it is zero, so a zero scalar in a body only means
  something when the field is a pointer (`replicas: 0` versus an unset `hostPort`),
- writes inline.txt: the embedded structs JSON inlines (`json:",inline"`), which protobuf
  nests as a field (a Volume's `volumeSource`, a key selector's `localObjectReference`).
"""
import os
import re
import shutil
import subprocess
import sys

API_GROUPS = [
    "core/v1", "apps/v1", "batch/v1", "networking/v1", "policy/v1", "rbac/v1",
    "coordination/v1", "discovery/v1", "storage/v1", "autoscaling/v1", "autoscaling/v2",
    "authentication/v1", "authorization/v1", "events/v1", "scheduling/v1",
]
MACHINERY = ["apis/meta/v1", "runtime", "runtime/schema", "util/intstr", "api/resource"]

HERE = os.path.dirname(os.path.abspath(__file__))
STRUCT = re.compile(r"^type (\w+) struct \{")
POINTER = re.compile(r'^\s+\w+\s+\*[\w.]+\s+`.*protobuf:"[^"]*name=(\w+)')
INLINE = re.compile(r'^\s+(\w+)\s+`json:",inline" protobuf:"([^"]*)"')


def go_fields(types_go, package):
    """The pointer fields and the inlined fields of the structs in `types_go`."""
    pointers, inline, struct = [], [], None
    with open(types_go) as f:
        for line in f:
            if m := STRUCT.match(line):
                struct = m.group(1)
            elif line.startswith("}"):
                struct = None
            elif struct and (m := POINTER.match(line)):
                pointers.append(f"{package}.{struct}.{m.group(1)}")
            elif struct and (m := INLINE.match(line)):
                # Without a name= the protobuf field is named after the type.
                named = re.search(r"name=(\w+)", m.group(2))
                name = named.group(1) if named else m.group(1)[0].lower() + m.group(1)[1:]
                inline.append(f"{package}.{struct}.{name}")
    return pointers, inline


def write(name, lines):
    with open(os.path.join(HERE, name), "w") as f:
        f.write("".join(f"{x}\n" for x in sorted(set(lines))))


def main(api, machinery):
    sources = [(os.path.join(api, g), f"k8s.io/api/{g}") for g in API_GROUPS]
    sources += [(os.path.join(machinery, "pkg", d), f"k8s.io/apimachinery/pkg/{d}") for d in MACHINERY]
    shutil.rmtree(os.path.join(HERE, "k8s.io"), ignore_errors=True)
    files, pointers, inline = [], [], []
    for src, dest in sources:
        os.makedirs(os.path.join(HERE, dest))
        shutil.copy(os.path.join(src, "generated.proto"), os.path.join(HERE, dest))
        files.append(f"{dest}/generated.proto")
        types_go = os.path.join(src, "types.go")
        if os.path.exists(types_go):
            p, i = go_fields(types_go, dest.replace("/", "."))
            pointers += p
            inline += i
    subprocess.run(["protoc", "-I.", "--include_imports", "-ok8s.pb", *sorted(files)],
                   cwd=HERE, check=True, stderr=subprocess.DEVNULL)
    write("pointers.txt", pointers)
    write("inline.txt", inline)


if __name__ == "__main__":
    main(*sys.argv[1:])
