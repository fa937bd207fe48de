"""A small layered ("Sugiyama") layout that writes a graph as SVG with no system packages.

1. Layers: an operation sits one layer below its deepest input; a leaf sits just above the
   first operation that reads it. Edges spanning a few layers get invisible waypoints, one
   per layer crossed, so they bend around the boxes in between; longer ones are one curve.
2. Order within a layer: barycenter sweeps (each node moves to the mean position of its
   neighbours in the layer above, then below), keeping the order with the fewest crossings.
3. Coordinates: each node is pulled toward the mean x of its neighbours; two passes (pushing
   right, then pushing left) keep the boxes apart, and their average is used.

Text is monospace, so box widths follow from the number of characters. Everything is computed
iteratively, so large graphs work (Graphviz lays them out better; see ``render``).
"""

from __future__ import annotations

from xml.sax.saxutils import escape

__all__ = ["layout_svg"]

FONT = 12
CHAR_W = 7.3  # monospace advance at 12 px
LINE_H = 15
PAD_X = 10
PAD_Y = 6
H_GAP = 18
V_GAP = 34
MARGIN = 16
DUMMY_W = 8
MAX_SPAN = 8  # edges crossing more layers get no waypoints


def _layers(n_nodes: int, inputs: list[tuple], consumers: list[list[int]]) -> list[int]:
    layer = [0] * n_nodes
    for i in range(n_nodes):  # nodes come inputs-first
        if inputs[i]:
            layer[i] = 1 + max(layer[j] for j in inputs[i])
    # move a node down next to its readers when that shortens at least as many edges as it
    # lengthens (leaves always; a side branch such as a weight's transpose too)
    for i in range(n_nodes - 1, -1, -1):
        if consumers[i] and len(consumers[i]) >= len(inputs[i]):
            layer[i] = max(layer[i], min(layer[c] for c in consumers[i]) - 1)
    return layer


def _crossings(order_a: list[int], order_b: list[int], down: dict[int, list[int]]) -> int:
    """Edge crossings between two adjacent layers (counting inversions, O(E log E))."""
    pos_b = {v: i for i, v in enumerate(order_b)}
    seq = [p for v in order_a for p in sorted(pos_b[u] for u in down.get(v, ()))]
    return _inversions(seq)


def _inversions(seq: list[int]) -> int:
    count = 0
    width = 1
    seq = list(seq)
    n = len(seq)
    while width < n:  # bottom-up merge sort
        out = []
        for lo in range(0, n, 2 * width):
            a, b = seq[lo : lo + width], seq[lo + width : lo + 2 * width]
            i = j = 0
            while i < len(a) and j < len(b):
                if b[j] < a[i]:
                    out.append(b[j])
                    count += len(a) - i
                    j += 1
                else:
                    out.append(a[i])
                    i += 1
            out.extend(a[i:])
            out.extend(b[j:])
        seq = out
        width *= 2
    return count


def layout_svg(g) -> str:
    """The SVG text of a ``Graph`` (see the module docstring for the layout)."""
    nodes = g.nodes
    n = len(nodes)
    inputs = [node.inputs for node in nodes]
    consumers: list[list[int]] = [[] for _ in range(n)]
    for node in nodes:
        for j in node.inputs:
            consumers[j].append(node.index)
    layer = _layers(n, inputs, consumers)

    # boxes (real nodes) and waypoints (dummies) as vertices 0..n-1 and n..
    width = [max(len(t) for t in node.label) * CHAR_W + 2 * PAD_X for node in nodes]
    height = [len(node.label) * LINE_H + 2 * PAD_Y for node in nodes]
    vlayer = list(layer)
    up: dict[int, list[int]] = {}  # vertex -> vertices in the layer above it feeds from
    down: dict[int, list[int]] = {}
    edges: list[tuple[int, int, list[int], int, int]] = []  # src, dst, waypoints, slot, nslots
    for node in nodes:
        dst = node.index
        k = len(node.inputs)
        for slot, src in enumerate(node.inputs):
            chain: list[int] = []
            if layer[dst] - layer[src] > MAX_SPAN:
                # a long edge (a weight read all along a deep graph) is drawn as one curve:
                # waypoints for it would cost layers x readers vertices
                edges.append((src, dst, chain, slot, k))
                continue
            prev = src
            for lay in range(layer[src] + 1, layer[dst]):
                v = len(vlayer)
                vlayer.append(lay)
                width.append(DUMMY_W)
                height.append(0)
                chain.append(v)
                down.setdefault(prev, []).append(v)
                up.setdefault(v, []).append(prev)
                prev = v
            down.setdefault(prev, []).append(dst)
            up.setdefault(dst, []).append(prev)
            edges.append((src, dst, chain, slot, k))
    nv = len(vlayer)
    n_layers = max(vlayer) + 1 if nv else 1
    rows: list[list[int]] = [[] for _ in range(n_layers)]
    for v in range(nv):
        rows[vlayer[v]].append(v)

    # ordering: barycenter sweeps, keeping the best
    def total_crossings() -> int:
        return sum(_crossings(rows[i], rows[i + 1], down) for i in range(n_layers - 1))

    best = [list(r) for r in rows]
    best_c = total_crossings()
    for sweep in range(12):
        if best_c == 0:
            break
        going_down = sweep % 2 == 0
        seq = range(1, n_layers) if going_down else range(n_layers - 2, -1, -1)
        for li in seq:
            ref = rows[li - 1] if going_down else rows[li + 1]
            pos = {v: i for i, v in enumerate(ref)}
            nbrs = up if going_down else down
            keyed = []
            for i, v in enumerate(rows[li]):
                ps = [pos[u] for u in nbrs.get(v, ()) if u in pos]
                keyed.append((sum(ps) / len(ps) if ps else float(i), i, v))
            keyed.sort()
            rows[li] = [v for _, _, v in keyed]
        c = total_crossings()
        if c < best_c:
            best_c = c
            best = [list(r) for r in rows]
    rows = best

    # coordinates
    x = [0.0] * nv
    for r in rows:
        cur = 0.0
        for v in r:
            x[v] = cur + width[v] / 2
            cur += width[v] + H_GAP

    def place(r: list[int], want: list[float]) -> None:
        if not r:
            return
        m = len(r)
        sep = [(width[r[i]] + width[r[i + 1]]) / 2 + H_GAP for i in range(m - 1)]
        right = list(want)
        for i in range(1, m):
            right[i] = max(want[i], right[i - 1] + sep[i - 1])
        left = list(want)
        for i in range(m - 2, -1, -1):
            left[i] = min(want[i], left[i + 1] - sep[i])
        for i, v in enumerate(r):
            x[v] = (right[i] + left[i]) / 2

    for it in range(8):
        going_down = it % 2 == 0
        seq = range(1, n_layers) if going_down else range(n_layers - 2, -1, -1)
        nbrs = up if going_down else down
        for li in seq:
            r = rows[li]
            want = []
            for v in r:
                ps = nbrs.get(v)
                want.append(sum(x[u] for u in ps) / len(ps) if ps else x[v])
            place(r, want)
    lo = min(x[v] - width[v] / 2 for v in range(nv))
    for v in range(nv):
        x[v] += MARGIN - lo
    row_h = [max((height[v] for v in r), default=0) for r in rows]
    row_y = []
    cur = MARGIN
    for h in row_h:
        row_y.append(cur + h / 2)
        cur += h + V_GAP
    y = [row_y[vlayer[v]] for v in range(nv)]
    # long edges run down a lane right of everything they pass, one lane per source
    right = [max((x[v] + width[v] / 2 for v in r), default=0.0) for r in rows]
    lane_x: dict[int, float] = {}
    for src, dst, chain, _, _ in edges:
        if not chain and layer[dst] - layer[src] > MAX_SPAN and src not in lane_x:
            last = max(layer[d] for s2, d, c2, _, _ in edges if s2 == src and not c2)
            lane_x[src] = max(right[layer[src] : last + 1]) + 16 + 10 * len(lane_x)
    total_w = max([x[v] + width[v] / 2 for v in range(nv)] + list(lane_x.values())) + MARGIN
    total_h = cur - V_GAP + MARGIN

    out = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{total_w:.0f}" '
        f'height="{total_h:.0f}" viewBox="0 0 {total_w:.0f} {total_h:.0f}" '
        f'font-family="DejaVu Sans Mono, Menlo, Consolas, monospace" font-size="{FONT}">',
        "<title>chainrule computational graph</title>",
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" '
        'markerWidth="7" markerHeight="7" orient="auto-start-reverse">'
        '<path d="M0,0 L10,5 L0,10 z" fill="#555555"/></marker></defs>',
        '<rect width="100%" height="100%" fill="#ffffff"/>',
        '<g fill="none" stroke="#555555" stroke-width="1.2">',
    ]
    for src, dst, chain, slot, k in edges:
        pts = [(x[src], y[src] + height[src] / 2)]
        pts += [(x[v], y[v]) for v in chain]
        dx = x[dst] - width[dst] / 2 + width[dst] * (slot + 1) / (k + 1)
        end = (dx, y[dst] - height[dst] / 2)
        if not chain and layer[dst] - layer[src] > MAX_SPAN:
            lx, (x0, y0) = lane_x[src], pts[0]
            y1 = end[1] - V_GAP / 2
            out.append(
                f'<path d="M{x0:.1f},{y0:.1f} C{x0:.1f},{y0 + V_GAP / 2:.1f} {lx:.1f},'
                f"{y0:.1f} {lx:.1f},{y0 + V_GAP / 2:.1f} L{lx:.1f},{y1:.1f} C{lx:.1f},"
                f'{end[1]:.1f} {dx:.1f},{y1:.1f} {dx:.1f},{end[1]:.1f}" marker-end="url(#arrow)"/>'
            )
            continue
        pts.append(end)
        d = f"M{pts[0][0]:.1f},{pts[0][1]:.1f}"
        for (x0, y0), (x1, y1) in zip(pts, pts[1:]):
            ym = (y0 + y1) / 2
            d += f" C{x0:.1f},{ym:.1f} {x1:.1f},{ym:.1f} {x1:.1f},{y1:.1f}"
        out.append(f'<path d="{d}" marker-end="url(#arrow)"/>')
    out.append("</g>")
    from .capture import STYLE

    for node in nodes:
        v = node.index
        fill, stroke = STYLE[node.kind]
        w, h = width[v], height[v]
        x0, y0 = x[v] - w / 2, y[v] - h / 2
        rx = h / 2 if node.kind == "op" else 4
        sw = 2.6 if v == g.output else 1.2
        out.append(
            f'<g class="node {node.kind}"><title>{escape(node.kind)}: {escape(node.name)}</title>'
        )
        out.append(
            f'<rect x="{x0:.1f}" y="{y0:.1f}" width="{w:.1f}" height="{h:.1f}" rx="{rx:.1f}" '
            f'fill="{fill}" stroke="{stroke}" stroke-width="{sw}"/>'
        )
        for li, text in enumerate(node.label):
            ty = y0 + PAD_Y + LINE_H * (li + 0.5) + FONT * 0.35
            weight = ' font-weight="bold"' if li == 0 else ' fill="#333333"'
            out.append(
                f'<text x="{x[v]:.1f}" y="{ty:.1f}" text-anchor="middle"{weight}>'
                f"{escape(text)}</text>"
            )
        out.append("</g>")
    out.append("</svg>")
    return "\n".join(out) + "\n"
