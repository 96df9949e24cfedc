"""Executed notebooks as a reader gets them: printed streams tidied, no machine path, an offline HTML copy."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from dfig import io, paths

#: a template that drops the lab template's CDN scripts (require.js, MathJax, Mermaid, widget manager):
#: the executed notebooks hold text and embedded PNGs only, so the HTML renders fully offline
OFFLINE_TEMPLATE = """{%- extends 'lab/index.html.j2' -%}
{%- block html_head_js -%}{%- endblock html_head_js -%}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
{%- block jupyter_widgets -%}{%- endblock jupyter_widgets -%}
"""


def notebook_html(ipynb: Path) -> str:
    """An executed notebook as self-contained HTML: lab styles inline, no script loaded from the network.

    Arguments: ``ipynb``, the notebook file. Returns: the HTML text.
    """
    import nbformat
    from jinja2 import DictLoader
    from nbconvert import HTMLExporter

    nb = nbformat.read(str(ipynb), as_version=4)
    exporter = HTMLExporter(
        extra_loaders=[DictLoader({"dfig_offline.html.j2": OFFLINE_TEMPLATE})],
        template_file="dfig_offline.html.j2",
    )
    body, _ = exporter.from_notebook_node(nb)
    return body


def _portable_texts(v: Any) -> Any:
    return [paths.portable_text(x) for x in v] if isinstance(v, list) else paths.portable_text(v)


def tidy_streams(outputs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Printed text as a reader sees it: consecutive stdout (or stderr) pieces merged, each line shown
    in its last state (a progress bar redrawn with ``\\r`` leaves its final line), blank pieces dropped
    (no empty stderr box).

    Arguments: ``outputs``, a cell's outputs. Returns: the tidied list (other outputs unchanged).
    """
    out: list[dict[str, Any]] = []
    for o in outputs:
        if (
            o.get("output_type") == "stream"
            and out
            and out[-1].get("output_type") == "stream"
            and out[-1].get("name") == o.get("name")
        ):
            out[-1]["text"] = "".join(out[-1]["text"]) + "".join(o.get("text", ""))
        else:
            out.append(dict(o))
    for o in out:
        if o.get("output_type") == "stream":
            text = "".join(o.get("text", ""))
            lines = text.replace("\r\n", "\n").split("\n")
            o["text"] = "\n".join(line.rstrip("\r").rsplit("\r", 1)[-1] for line in lines)
    return [o for o in out if o.get("output_type") != "stream" or "".join(o["text"]).strip()]


def portable_notebook(ipynb: Path) -> Path:
    """Rewrite an executed notebook so it names no absolute path of this machine (streams tidied).

    Arguments: ``ipynb``, the executed copy. The papermill metadata (input/output paths, parameters)
    goes through :func:`dfig.paths.portable_obj`; cell sources, printed text, tracebacks and text
    outputs through :func:`dfig.paths.portable_text`; images are left alone. Returns: ``ipynb``.
    """
    nb = io.load_json(ipynb)
    nb["metadata"] = paths.portable_obj(nb.get("metadata", {}))
    for cell in nb.get("cells", []):
        cell["source"] = _portable_texts(cell.get("source", ""))
        if "outputs" in cell:
            cell["outputs"] = tidy_streams(cell["outputs"])
        for out in cell.get("outputs", []):
            for key in ("text", "traceback", "evalue"):
                if key in out:
                    out[key] = _portable_texts(out[key])
            data = out.get("data", {})
            for mime in [m for m in data if not m.startswith("image/")]:
                data[mime] = _portable_texts(data[mime]) if isinstance(data[mime], str | list) else data[mime]
    io.atomic_write_text(ipynb, json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
    return ipynb


def export_html(ipynb: Path) -> Path:
    """Write an HTML copy of an executed notebook next to it (readable offline, without Jupyter).

    Arguments: ``ipynb``, the executed notebook; it is first made portable (:func:`portable_notebook`),
    so neither copy names a machine path. Returns: the path of the ``.html`` file.
    """
    portable_notebook(ipynb)
    return io.atomic_write_text(ipynb.with_suffix(".html"), notebook_html(ipynb))


__all__ = ["OFFLINE_TEMPLATE", "export_html", "notebook_html", "portable_notebook", "tidy_streams"]
