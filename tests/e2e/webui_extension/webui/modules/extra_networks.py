"""``modules.extra_networks``: A1111's ``<kind:arg:arg>`` prompt tags (LoRA, hypernetworks, ...)."""

from __future__ import annotations

import re
from collections import defaultdict

TAG = re.compile(r"<(\w+):([^>]+)>")


class ExtraNetworkParams:
    def __init__(self, items: list[str] | None = None) -> None:
        self.items = items or []
        self.positional: list[str] = []
        self.named: dict[str, str] = {}
        for item in self.items:
            key, sep, value = item.partition("=")
            if sep:
                self.named[key] = value
            else:
                self.positional.append(item)


def parse_prompt(prompt: str) -> tuple[str, dict[str, list[ExtraNetworkParams]]]:
    found: dict[str, list[ExtraNetworkParams]] = defaultdict(list)

    def take(match: re.Match[str]) -> str:
        found[match.group(1)].append(ExtraNetworkParams(items=match.group(2).split(":")))
        return ""

    return TAG.sub(take, prompt), found


def parse_prompts(prompts: list[str]) -> tuple[list[str], dict[str, list[ExtraNetworkParams]]]:
    """Each prompt without its tags, and the tags of the first prompt (as A1111 does)."""
    cleaned: list[str] = []
    extra = None
    for prompt in prompts:
        text, parsed = parse_prompt(prompt)
        if extra is None:
            extra = parsed
        cleaned.append(text)
    return cleaned, extra or {}
