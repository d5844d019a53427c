"""A slow HTTP target for bench/delivery.sh: answers every request after LATENCY_MS,
at most CAP at once (the rest wait), and writes "<peak at once> <requests>" to PEAK_FILE
every second, then the most requests that arrived within any one second.  Usage: delivery_target.py PORT LATENCY_MS CAP PEAK_FILE"""
import asyncio, sys, time
LAT = float(sys.argv[2]) / 1000; CAP = int(sys.argv[3]); port = int(sys.argv[1])
sem = asyncio.Semaphore(CAP); state = {"open": 0, "peak": 0, "n": 0, "per_second": 0}
from collections import deque
arrivals = deque()
async def handle(reader, writer):
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            if length: await reader.readexactly(length)
            now = time.monotonic(); arrivals.append(now)
            while arrivals and arrivals[0] <= now - 1.0: arrivals.popleft()
            state["per_second"] = max(state["per_second"], len(arrivals))
            async with sem:
                state["open"] += 1; state["peak"] = max(state["peak"], state["open"])
                await asyncio.sleep(LAT)
                state["open"] -= 1; state["n"] += 1
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-type: application/json\r\n\r\n{}")
            await writer.drain()
    except Exception:
        writer.close()
async def report():
    while True:
        await asyncio.sleep(1)
        open(sys.argv[4], "w").write(f'{state["peak"]} {state["n"]} {state["per_second"]}')
async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", port, backlog=1024)
    asyncio.create_task(report())
    async with server: await server.serve_forever()
asyncio.run(main())
