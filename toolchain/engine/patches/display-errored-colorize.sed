# backend/display/diff.go: the "N errored" line of the summary is written with its colour tags but without
# opts.Color.Colorize, so that `pulumi up --diff` piped to a file (or any non-interactive run) prints
# `<{%fg 1%}>1 errored<{%reset%}>`. Colorize it as every other line of the summary is.
s|		out.WriteString(errSummary)|		out.WriteString(opts.Color.Colorize(errSummary))|
