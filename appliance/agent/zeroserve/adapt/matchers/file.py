"""The `file` request matcher (`http.matchers.file`, modules/caddyhttp/fileserver/matcher.go)."""

from __future__ import annotations

from zeroserve.adapt.registry import matcher
from zeroserve.adapt.values import omit_empty
from zeroserve.caddyfile.dispenser import Dispenser


@matcher("file")
def unmarshal_file(d: Dispenser, name: str) -> dict:
    """Syntax::

        file [<files...>] {
            root       <path>
            try_files  <files...>
            try_policy <policy>
            split_path <delims...>
        }

    with policy first_exist, first_exist_fallback, smallest_size, largest_size or
    most_recently_modified.
    """
    root = try_policy = ""
    try_files: list[str] = []
    split_path: list[str] = []
    while d.next():
        try_files.extend(d.remaining_args())
        while d.next_block(0):
            sub = d.val()
            if sub == "root":
                if not d.next_arg():
                    raise d.arg_err()
                root = d.val()
            elif sub == "try_files":
                try_files.extend(d.remaining_args())
                if not try_files:
                    raise d.arg_err()
            elif sub == "try_policy":
                if not d.next_arg():
                    raise d.arg_err()
                try_policy = d.val()
            elif sub == "split_path":
                split_path = d.remaining_args()
                if not split_path:
                    raise d.arg_err()
            else:
                raise d.err(f"unrecognized subdirective: {sub}")
    return file_matcher(
        root=root, try_files=try_files, try_policy=try_policy, split_path=split_path
    )


def file_matcher(
    root: str = "",
    try_files: list[str] | None = None,
    try_policy: str = "",
    split_path: list[str] | None = None,
) -> dict:
    """MatchFile's JSON, in its field order (fs, root, try_files, try_policy, split_path)."""
    fields = {"root": root, "try_files": try_files, "try_policy": try_policy}
    return omit_empty({**fields, "split_path": split_path})
