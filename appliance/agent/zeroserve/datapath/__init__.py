"""Plan -> BPF: render (jinja2), build (bcc, in a child), attach (pyroute2), pins (bpffs)."""
