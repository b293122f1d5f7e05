"""A resolver with fixed answers, for aiohttp: what a name resolves to, without the network."""

from __future__ import annotations

import ipaddress
import socket

from aiohttp.abc import AbstractResolver, ResolveResult


class StaticResolver(AbstractResolver):
    """Answers NAME with the addresses given for it; records every question asked."""

    def __init__(self, answers: dict[str, list[str]]) -> None:
        self.answers = answers
        self.asked: list[str] = []

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        self.asked.append(host)
        if host not in self.answers:
            raise OSError(f"{host}: no such name")
        return [{"hostname": host, "host": address, "port": port,
                 "family": socket.AF_INET6 if ipaddress.ip_address(address).version == 6
                 else socket.AF_INET, "proto": 0, "flags": socket.AI_NUMERICHOST}
                for address in self.answers[host]]

    async def close(self) -> None:
        pass
