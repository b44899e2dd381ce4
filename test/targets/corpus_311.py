# Parity corpus, Python 3.11+: exception groups and task groups.
import asyncio


def groups(log):
    try:
        raise ExceptionGroup("many", [ValueError(1), TypeError(2), KeyError(3)])
    except* ValueError as eg:
        log.append(len(eg.exceptions))
    except* (TypeError, KeyError) as eg:
        log.append(sorted(type(e).__name__ for e in eg.exceptions))
    return log


async def tasks(log):
    async def child(n):
        await asyncio.sleep(0)
        log.append(n)
    async with asyncio.TaskGroup() as tg:
        for n in range(3):
            tg.create_task(child(n))
    return sorted(log[-3:])
