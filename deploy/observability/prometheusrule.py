"""Writes deploy/k8s/base/prometheusrule.yaml: the alert rules of alerts.yml as a Prometheus Operator
PrometheusRule, so Kubernetes and compose alert on the same rules. deploy/checks/manifests.sh fails when the
committed file is stale.

Usage: python prometheusrule.py [--check]
"""

import pathlib
import sys

import yaml

HERE = pathlib.Path(__file__).resolve().parent
OUT = HERE.parent / "k8s" / "base" / "prometheusrule.yaml"
HEADER = (
    "# Generated from deploy/observability/alerts.yml by deploy/observability/prometheusrule.py: edit those,\n"
    "# not this file (deploy/checks/manifests.sh fails when it is stale).\n"
)


class Literal(str):
    """A multi-line string written as a YAML block, as in alerts.yml."""


def literal(dumper, value):
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|")


def blocks(node):
    if isinstance(node, dict):
        return {key: blocks(value) for key, value in node.items()}
    if isinstance(node, list):
        return [blocks(value) for value in node]
    if isinstance(node, str) and "\n" in node:
        return Literal(node)
    return node


def render():
    rules = yaml.safe_load((HERE / "alerts.yml").read_text())
    resource = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "switchyard"},
        "spec": {"groups": rules["groups"]},
    }
    yaml.add_representer(Literal, literal)
    return HEADER + yaml.dump(blocks(resource), sort_keys=False, width=120)


def main():
    text = render()
    if sys.argv[1:] == ["--check"]:
        if OUT.read_text() != text:
            sys.exit(f"{OUT} is stale: run python {pathlib.Path(__file__).name}")
        return
    OUT.write_text(text)


if __name__ == "__main__":
    main()
