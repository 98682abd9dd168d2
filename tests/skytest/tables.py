"""The CLI's borderless tables, as the reference prints them."""


def parse_table(lines, header):
    """Checks one borderless table (header row first, columns left-aligned,
    two blanks between columns, each as wide as its widest cell, no trailing
    blanks) and returns its rows as dicts. Header names may contain a blank."""
    assert lines, "empty table, expected header %s" % header
    head = lines[0]
    starts, pos = [], 0
    for name in header:
        i = head.find(name, pos)
        assert i >= 0, "header %r lacks %s" % (head, name)
        assert head[pos:i].strip() == "", "unexpected text before %s in %r" % (name, head)
        starts.append(i)
        pos = i + len(name)
    assert head[pos:] == "", "trailing text in header %r" % head
    for a, b, name in zip(starts, starts[1:], header):
        assert head[a:b] == name + " " * (b - a - len(name)), "header %r" % head
        assert b - a >= len(name) + 2, "two blanks between columns: %r" % head
    rows = []
    for line in lines[1:]:
        assert line == line.rstrip(), "trailing blanks in %r" % line
        cells = []
        for i, a in enumerate(starts):
            b = starts[i + 1] if i + 1 < len(starts) else len(line)
            assert a < len(line) and line[a] != " ", "column %s not aligned in %r" % (
                header[i], line)
            if i > 0:
                assert line[a - 2:a] == "  ", "column %s not aligned in %r" % (header[i], line)
            cell = line[a:b]
            if i + 1 < len(starts):
                assert len(cell.rstrip()) <= b - a - 2, "cell %r overflows column %s" % (
                    cell, header[i])
            cells.append(cell.strip())
        rows.append(dict(zip(header, cells)))
    # Each column is exactly as wide as its widest cell (header included).
    for i in range(len(starts) - 1):
        widest = max([len(header[i])] + [len(r[header[i]]) for r in rows])
        assert starts[i + 1] - starts[i] == widest + 2, "column %s width %d, widest %d" % (
            header[i], starts[i + 1] - starts[i] - 2, widest)
    return rows
