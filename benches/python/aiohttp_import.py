#!/usr/bin/env python3
"""The Python peer of `wolkvox-import import` for benchmarks: aiohttp + aiolimiter.

What a careful script would do with the bench file (`scripts/bench.sh` makes it): read
the CSV, map each row to the Cases Insert form (the same fields as
mappings/tickets.yaml), POST it as multipart/form-data with two requests in flight (the
API's limit per token) under an aiolimiter rate, read each JSON answer, and write one
results line per row. No ledger, no retries: it is the floor a Python importer costs.

    python3 benches/python/aiohttp_import.py FILE.csv URL [--rate R] [--results OUT.csv]

Prints `rows=N seconds=S` like examples/baseline.rs.
"""
import argparse
import asyncio
import csv
import json
import sys
import time

import aiohttp
from aiolimiter import AsyncLimiter

CASE_TYPES = {"Petición": "Request", "Queja": "Complaints", "Reclamo": "Claims",
              "Sugerencia": "Suggestions"}


def payload(row):
    row = {name: value or "" for name, value in row.items() if name is not None}
    day, month, year = (row["Fecha de radicación"].split("/") + ["", "", ""])[:3]
    form = {
        "Asunto": row["Asunto"], "Canal": row["Canal"], "Ciudad": row["Ciudad"],
        "Cliente": row["Cliente"], "Fecha de radicación": f"{year}-{month}-{day}",
        "Número de ticket": row["Ticket"], "Teléfono": row["Teléfono"].replace(" ", ""),
    }
    return {
        "operation": "modulotest01",
        "case-type": CASE_TYPES.get(row["Tipo"], row["Tipo"]),
        "responsible": row["Asesor"],
        "owner": "ADMIN_@modulotest01",
        "contact": row["Correo"],
        "description": row["Descripción"],
        "status": row["Estado"],
        "priority": row["Prioridad"],
        "solution": row["Solución"],
        "form": json.dumps(form, ensure_ascii=False, separators=(",", ":")),
    }


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("file")
    parser.add_argument("url")
    parser.add_argument("--rate", type=float, default=1_000_000.0)
    parser.add_argument("--results", default="/dev/null")
    args = parser.parse_args()
    url = args.url.rstrip("/") + "/server/API/v2/cases/insert.php"
    started = time.monotonic()
    queue = asyncio.Queue(maxsize=64)
    limiter = AsyncLimiter(args.rate, 1)
    sent = 0
    with open(args.results, "w", newline="", encoding="utf-8") as out:
        results = csv.writer(out)
        results.writerow(["row", "key", "status", "case_id", "http_status"])

        async def worker(session):
            nonlocal sent
            while True:
                item = await queue.get()
                if item is None:
                    return
                number, row = item
                form = aiohttp.FormData(default_to_multipart=True)
                for name, value in payload(row).items():
                    form.add_field(name, value)
                async with limiter:
                    async with session.post(url, data=form, headers={"Wolkvox-Token": "bench"}) as response:
                        text = await response.text()
                try:
                    answer = json.loads(text)
                    case_id = (answer.get("data") or {}).get("wolkvox_id", "")
                except (ValueError, AttributeError):
                    case_id = ""
                status = "created" if response.status == 200 and case_id else "failed"
                results.writerow([number, row["Ticket"], status, case_id, response.status])
                sent += 1

        connector = aiohttp.TCPConnector(limit=2)
        async with aiohttp.ClientSession(connector=connector) as session:
            workers = [asyncio.create_task(worker(session)) for _ in range(2)]
            with open(args.file, newline="", encoding="utf-8-sig") as source:
                for number, row in enumerate(csv.DictReader(source), start=2):
                    if row.get("Ticket"):
                        await queue.put((number, row))
            for _ in workers:
                await queue.put(None)
            await asyncio.gather(*workers)
    print(f"rows={sent} seconds={time.monotonic() - started:.3f}")


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
