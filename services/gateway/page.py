"""The operator's status page: what is in the catalog and how far ingest has come."""

from __future__ import annotations

from html import escape

from shared.db import CatalogStats, SourceOut

_STYLE = """
body{font:16px/1.5 system-ui,sans-serif;margin:0 auto;max-width:56rem;padding:2rem;color:#1d1d1f}
h1{margin:0 0 .25rem}p.lead{margin:0 0 2rem;color:#555}
table{border-collapse:collapse;width:100%;margin:0 0 2rem}
th,td{text-align:left;padding:.4rem .6rem;border-bottom:1px solid #ddd}
th{font-weight:600;background:#f5f5f7}.num{text-align:right;font-variant-numeric:tabular-nums}
dl{display:grid;grid-template-columns:repeat(auto-fit,minmax(9rem,1fr));gap:1rem;margin:0 0 2rem}
dl div{background:#f5f5f7;border-radius:.5rem;padding:.75rem}dt{color:#555;font-size:.85rem}
dd{margin:0;font-size:1.6rem;font-weight:600}a{color:#0050b3}
"""


def render_status_page(stats: CatalogStats, sources: list[SourceOut]) -> str:
    tiles = [
        ("Sources", stats.sources),
        ("Active products", stats.products_active),
        ("Inactive products", stats.products_inactive),
        *((f"Images {state.value}", count) for state, count in stats.images.items()),
    ]
    tile_html = "".join(
        f"<div><dt>{escape(label)}</dt><dd>{count:,}</dd></div>" for label, count in tiles
    )
    rows = "".join(
        "<tr>"
        f"<td>{escape(source.name)}</td>"
        f'<td><a href="{escape(source.base_url)}">{escape(source.base_url)}</a></td>'
        f"<td>{'enabled' if source.enabled else 'disabled'}</td>"
        "</tr>"
        for source in sources
    )
    if not rows:
        rows = (
            '<tr><td colspan="3">No sources yet: '
            "<code>lookalike run</code> adds the demo shop.</td></tr>"
        )
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Lookalike · status</title>
<style>{_STYLE}</style>
</head>
<body>
<main>
<h1>Lookalike</h1>
<p class="lead">Visual recommendations for fashion shops. Catalog status of this instance.</p>
<section aria-labelledby="counts"><h2 id="counts">Catalog</h2><dl>{tile_html}</dl></section>
<section aria-labelledby="sources"><h2 id="sources">Sources</h2>
<table><thead><tr><th>Name</th><th>Start URL</th><th>State</th></tr></thead>
<tbody>{rows}</tbody></table></section>
<p>API: <a href="/docs">OpenAPI docs</a> · <a href="/status">/status</a> ·
<a href="/readyz">/readyz</a> · <a href="/healthz">/healthz</a></p>
</main>
</body>
</html>
"""
