#!/usr/bin/env python3
"""gen_corpus.py - write structured seed inputs for fuzz/fuzz_ops.c.

Usage: fuzz/gen_corpus.py OUTDIR

Each input is the 12-byte zone header followed by operations, in the encoding
fuzz_ops.c decodes (fuzz/README.md has the table).  The scenarios below
exercise every operation kind on every kind of zone: shared and exclusive
owners, overlapping configurations, deferred scrub and its ring overflow,
zones that do not start zeroed, budgeted removal with traffic in between,
quotas, the atomic reserve, higher orders, address-based calls, reserved
ranges, reseeding, slot-less and per-CPU paths.  Then a few dozen random
inputs from a fixed seed, biased towards allocation and frees.
Deterministic: the same files every time.
"""
import os
import random
import sys

# Opcode byte of the first KTAB entry of each kind (KTAB in fuzz_ops.c).
OPC = {
    "add": 0, "remove": 3, "remove_all": 5, "alloc": 6, "alloc_batch": 12,
    "alloc_page": 14, "free": 15, "free_batch": 20, "free_bad": 21,
    "free_page": 25, "scrub": 26, "drain": 28, "reseed": 29, "reserve": 30,
    "misc": 31,
}
NARGS = {
    "add": 6, "remove": 2, "remove_all": 2, "alloc": 3, "alloc_batch": 4,
    "alloc_page": 3, "free": 1, "free_batch": 1, "free_bad": 4, "free_page": 3,
    "scrub": 1, "drain": 0, "reseed": 1, "reserve": 3, "misc": 2,
}
ZEROED, DEFERRED = 1, 2
NO_SCRUB = 0x1C          # h3 bits 2..4 all set
NO_MAP = 0x20            # with NO_SCRUB: no direct map
ORD = {0: 0, 1: 6, 2: 8, 3: 10, 4: 11, 5: 12, 6: 13, 8: 14, 10: 15}  # order -> byte
ODD_ORDER = {11: 0xF0, 12: 0xF1, 31: 0xF2, 32: 0xF3, 64: 0xF4, "max": 0xF5}
BUDGET = {0: 0, 1: 1, 2: 2, 3: 3, 5: 4, 8: 5, 16: 6, 31: 7, 64: 8, 100: 9,
          256: 10, 1000: 11, 4096: 12, 65536: 13, "max": 14, 7: 15}
NOWAIT, ATOMIC, ZERO, EXCL = 1, 2, 4, 8   # pick_flags: b&3 base kind, 4, 8
PERMILLE = {0: 0, 15: 1, 100: 2, 1000: 3, 31: 6, 500: 7}


def header(frames=128, colours=8, flags=ZEROED, cpus=2, max_owners=4,
           base=0, permille=15, abuse=False, seed=0, seedlen=0):
    """Zone header; frames 64..2048, colours a power of two, cpus 1..3."""
    h = [0] * 12
    if 64 <= frames <= 256 and (frames - 64) < 193:
        h[0], h[1] = 0, frames - 64
    else:
        v = frames - 64
        h[0], h[1] = 0x80 | (v >> 8), v & 0xFF
    h[2] = colours.bit_length() - 1
    h[3] = flags
    h[4] = {1: 0, 2: 1, 3: 3}[cpus] | ((max_owners - 1) << 2)
    if isinstance(base, tuple):
        mode, a, b = base
        h[5], h[6], h[7] = mode, a, b
    elif base == 0:
        h[5] = 0
    elif base < 256:
        h[5], h[6] = 1, base
    elif base < 65536:
        h[5], h[6], h[7] = 2, base >> 8, base & 0xFF
    else:
        raise ValueError("use a (mode, a, b) tuple for big bases")
    h[8] = PERMILLE[permille] | (8 if abuse else 0) | (seedlen << 4)
    h[9], h[10], h[11] = seed & 0xFF, (seed >> 8) & 0xFF, 0x5A
    return bytes(h)


class Prog:
    def __init__(self, **zone):
        self.b = bytearray(header(**zone))

    def op(self, kind, *args):
        args = list(args) + [0] * (NARGS[kind] - len(args))
        assert len(args) == NARGS[kind], kind
        self.b.append(OPC[kind])
        self.b.extend(a & 0xFF for a in args)
        return self

    # owner ids: 1..max_owners are bytes 0..max_owners-1 (1 + b % max_owners)
    def add(self, oid, mask_mode, a=0, b=0, excl=False, quota=0, flags_extra=0):
        q = 0 if quota == 0 else (0x80 | (quota - 1)) if quota <= 64 else quota
        return self.op("add", oid - 1, mask_mode, a, b, (1 if excl else 0) | flags_extra, q)

    def alloc(self, oid, order=0, flags=NOWAIT):
        ob = ODD_ORDER[order] if order in ODD_ORDER else ORD[order]
        return self.op("alloc", oid - 1, ob, flags)

    def batch(self, oid, n, order=0, flags=NOWAIT, go_on=False):
        return self.op("alloc_batch", oid - 1, (n - 1) | (0x80 if go_on else 0), ORD[order], flags)

    def page(self, oid, order=0, flags=NOWAIT, single=False):
        return self.op("alloc_page", oid - 1, ORD[order] | (0x40 if single else 0), flags)

    def free(self, idx=0):
        return self.op("free", idx)

    def free_batch(self, n):
        return self.op("free_batch", n - 1)

    def bad(self, sub, a=0, b=0, c=0):
        return self.op("free_bad", sub, a, b, c)

    def fpage(self, sub, idx=0, off=0):
        return self.op("free_page", sub, idx, off)

    def remove(self, oid, budget=64):
        return self.op("remove", oid - 1, BUDGET[budget])

    def remove_all(self, oid, budget=64):
        return self.op("remove_all", oid - 1, BUDGET[budget])

    def scrub(self, budget=64, null_done=False):
        return self.op("scrub", BUDGET[budget] | (0xF0 if null_done else 0))

    def drain(self):
        return self.op("drain")

    def reseed(self, mode=0):
        return self.op("reseed", mode)

    def reserve(self, off, n=1, mode=0):
        if mode == 0:
            return self.op("reserve", off >> 8, off & 0xFF, (n - 1) & 63)
        return self.op("reserve", off >> 8, off & 0xFF, mode)

    def misc(self, sub, a=0):
        return self.op("misc", sub, a)

    def scan(self):
        return self.misc(0)


# mask modes (some_mask): 0/1 copy an owner's set, 2 copy with one colour
# flipped, 3 run (len 1 + a % C at b), 4 aligned group (2^(a%7) wide, group b),
# 5 sparse random, 6 single colour a, 7 all colours, 8 invalid, 9 disjoint
COPY, FLIP, RUN, GROUP, SPARSE, SINGLE, ALL, INVALID, DISJOINT = 0, 2, 3, 4, 5, 6, 7, 8, 9


def scenarios():
    out = {}

    # Two shared owners on the same colours, one exclusive elsewhere.
    p = Prog(frames=128, colours=8, cpus=2, max_owners=4)
    p.add(1, RUN, 3, 0).add(2, COPY, 0).add(3, RUN, 3, 4, excl=True)
    p.batch(1, 20).batch(2, 10).alloc(3, 0, NOWAIT | EXCL).alloc(3, 1, ATOMIC | ZERO)
    p.scan().free(0).free(3).free_batch(8).scan().batch(3, 30).free_batch(40).scan()
    out["shared-exclusive"] = p

    # Every owner-add refusal: EEXIST, EOVERLAP, ESHARED, EINVAL, ENOOWNER.
    p = Prog(frames=96, colours=16, max_owners=6)
    p.add(1, RUN, 3, 0).add(1, RUN, 3, 8)                 # EEXIST
    p.add(2, RUN, 3, 0, excl=True)                          # ESHARED
    p.add(2, RUN, 7, 8, excl=True).add(3, FLIP, 1, 9)      # EOVERLAP
    p.add(3, RUN, 1, 2)                                     # partial overlap
    p.add(4, INVALID, 0).add(4, INVALID, 1, 3).add(4, RUN, 0, 12, flags_extra=0xE2)
    p.op("add", 0xF8, RUN, 0, 0, 0, 0)                      # id 0
    p.op("add", 0xF9, RUN, 0, 0, 0, 0)                      # max_owners + 1
    p.op("add", 3, RUN, 0, 14, 0xFE, 0)                     # NULL cfg
    p.add(5, DISJOINT, 0).add(6, COPY, 1).scan()
    p.batch(1, 10).batch(5, 10).batch(6, 10).scan()
    out["owner-rules"] = p

    # Deferred scrub: frees park in the ring, a full ring scrubs its oldest.
    p = Prog(frames=256, colours=4, flags=ZEROED | DEFERRED, cpus=2)
    p.add(1, ALL).add(2, COPY, 0)
    p.batch(1, 100).free_batch(64).free_batch(30).scan().scrub(3).scrub(5, True)
    p.batch(2, 80, go_on=True).scan().scrub(1000).batch(2, 60).scan()
    out["deferred-ring"] = p

    # Same, slot-less (one CPU slot, ours is 1): no ring, locked paths.
    p = Prog(frames=200, colours=2, flags=ZEROED | DEFERRED, cpus=1)
    p.add(1, ALL).add(2, COPY, 0).batch(1, 60).free_batch(60).batch(2, 40)
    p.alloc(1, 2, ATOMIC).alloc(2, 1).free_batch(10).scrub(16).drain().scan()
    out["slotless"] = p

    # A zone that did not start zeroed: nothing allocatable until scrubbed.
    p = Prog(frames=160, colours=4, flags=0, cpus=2)
    p.add(1, ALL).alloc(1).alloc(1, 0, ATOMIC).alloc(1, 1, ATOMIC)
    p.scrub(3).scrub(1).alloc(1).scrub(100).batch(1, 40).scan().scrub(4096).scan()
    p.add(2, COPY, 0).batch(2, 50).free_batch(20).scan()
    out["unzeroed"] = p

    # Unzeroed and deferred, scrubbing while a pool is created on scrubbed colours.
    p = Prog(frames=300, colours=8, flags=DEFERRED, cpus=3, max_owners=3)
    p.scrub(31).add(1, RUN, 3, 0).scrub(64).add(2, RUN, 1, 4, excl=True)
    p.batch(1, 30).batch(2, 30).free_batch(50).scrub(8).scrub(4096).scan()
    out["unzeroed-deferred"] = p

    # Budgeted removal with traffic between steps; allocs and frees for the
    # dying owner are refused; re-adding the id waits for the end.
    p = Prog(frames=256, colours=8, cpus=2, max_owners=4)
    p.add(1, RUN, 3, 0).add(2, COPY, 0).add(3, RUN, 3, 4, excl=True)
    p.batch(1, 30).batch(2, 20).batch(3, 20).alloc(1, 2).alloc(3, 2)
    p.remove(1, 16).alloc(1).free(0).free(1).remove(1, 16).add(1, RUN, 3, 0)
    p.remove(1, 16).scan().remove_all(1, 16).scan().add(1, COPY, 0).batch(1, 5)
    p.remove(3, 8).remove(3, 8).add(4, RUN, 3, 4).remove_all(3, 31).add(4, RUN, 3, 4)
    p.batch(4, 10).scan()
    out["removal-steps"] = p

    # The last owner of a pool: the pool dies; adds on its colours get EBUSY.
    p = Prog(frames=128, colours=4, flags=ZEROED | DEFERRED, cpus=2, max_owners=3)
    p.add(1, RUN, 1, 0).batch(1, 20).free_batch(10)
    for _ in range(6):
        p.remove(1, 8).add(2, RUN, 1, 0)
    p.remove_all(1, 3).add(2, RUN, 1, 0).batch(2, 5).scan()
    out["pool-death"] = p

    # Exclusive pool teardown zeroes everything; reuse by another owner.
    p = Prog(frames=192, colours=4, cpus=2, max_owners=2)
    p.add(1, ALL, excl=True).batch(1, 60).free_batch(30).batch(1, 20, flags=ATOMIC | ZERO)
    p.remove_all(1, 64).add(2, ALL).batch(2, 80).scan()
    out["exclusive-teardown"] = p

    # Quotas.
    p = Prog(frames=128, colours=2, max_owners=3)
    p.add(1, ALL, quota=5).add(2, COPY, 0, quota=40).batch(1, 8).alloc(1, 1).free(0)
    p.alloc(1, 0, ATOMIC).alloc(1, 1).batch(2, 50, go_on=True).scan()
    p.op("add", 2, GROUP, 0, 0, 0, 0xC2)                     # quota 1024 for owner 3
    out["quota"] = p

    # The atomic reserve: NOWAIT stops at it, ATOMIC goes on.
    for pm in (100, 1000):
        p = Prog(frames=200, colours=1, permille=pm, cpus=2)
        p.add(1, ALL).batch(1, 200).alloc(1, 0, 0).alloc(1, 1).batch(1, 40, flags=ATOMIC)
        p.alloc(1, 0, ATOMIC).free_batch(5).alloc(1, 0, NOWAIT).alloc(1, 2, ATOMIC).scan()
        out["reserve-%d" % pm] = p

    # Higher orders: ECOLOUR, EFRAG, misaligned/wrong-order/interior frees.
    p = Prog(frames=1024, colours=16, cpus=2, max_owners=3)
    p.add(1, GROUP, 3, 0).add(2, RUN, 2, 8).add(3, GROUP, 4, 0, excl=False)
    for o in (1, 2, 3, 4, 5, 6, 8, 10):
        p.alloc(1, o).alloc(2, o)
    p.alloc(1, 11).alloc(1, 32).alloc(1, "max").drain().alloc(1, 3).alloc(1, 2, ATOMIC | ZERO)
    p.bad(3, 0, 1).bad(4, 1, 3).bad(4, 2, 12).bad(5, 0, 5, 1).bad(5, 3, 2, 0).bad(0, 1, 1, 1)
    p.batch(1, 100).alloc(1, 4).alloc(1, 3, ATOMIC).scan().free_batch(60).alloc(1, 5).scan()
    out["orders"] = p

    # Every bad free.
    p = Prog(frames=128, colours=4, flags=ZEROED | DEFERRED, cpus=2, max_owners=4)
    p.add(1, RUN, 1, 0).add(2, COPY, 0).add(3, RUN, 1, 2, excl=True)
    p.batch(1, 10).batch(2, 10).batch(3, 5).alloc(1, 1).alloc(3, 1)
    for sub in range(8):
        for a in (0, 3, 7):
            p.bad(sub, a, a * 5 + 1, a * 11 + 2)
    p.free_batch(5).bad(1, 0).bad(1, 1).bad(1, 2).batch(2, 10).bad(1, 0).bad(1, 3).scan()
    for w in range(8):
        p.bad(2, 3, w, 0x81)
    out["bad-frees"] = p

    # Address-based calls.
    p = Prog(frames=96, colours=2, cpus=2, base=1000)
    p.add(1, ALL).add(2, COPY, 0).page(1).page(1, single=True).page(1, 2).page(2, 1, ZERO)
    for sub in range(6):
        p.fpage(sub, 0, 3).fpage(sub | 8, 1, 200)
    p.fpage(3, 0, 1).fpage(3, 0, 2).fpage(3, 0, 3).fpage(3, 0, 4).fpage(3, 0, 5)
    p.misc(1, 5).misc(1, 6).scan()
    out["pages"] = p

    # Reserved ranges: before owners, EBUSY after, ERANGE.
    p = Prog(frames=128, colours=4, flags=0, cpus=2, base=77)
    p.reserve(10, 8).reserve(120, 20).reserve(0, mode=2).reserve(0, mode=0xC0)
    p.reserve(0, mode=0xC1).reserve(0, mode=0xC2).reserve(0, mode=0xCF).reserve(100, mode=0x40)
    p.add(1, RUN, 1, 0).scrub(1000).reserve(5, 4).reserve(3, 1).batch(1, 20).scan()
    out["reserve-range"] = p

    # Reseeding, queries, bad handles, init refusals.
    p = Prog(frames=64, colours=1, abuse=True, seedlen=2)
    p.add(1, ALL).batch(1, 10)
    for m in range(8):
        p.reseed(m)
    for m in range(1, 8):
        p.misc(m, 3)
    p.batch(1, 10).free_batch(20).scan()
    out["reseed-misc"] = p

    # No-scrub zone with a map (no LAB_ZERO without a map: that is a bug).
    p = Prog(frames=128, colours=2, flags=NO_SCRUB, cpus=2)
    p.add(1, ALL).add(2, COPY, 0).batch(1, 20).free_batch(20).batch(2, 20, flags=NOWAIT | ZERO)
    p.remove_all(2, 16).remove_all(1, 16).add(3, ALL, excl=True).batch(3, 10).scan()
    out["noscrub"] = p
    p = Prog(frames=128, colours=2, flags=NO_SCRUB | NO_MAP, cpus=2)
    p.add(1, ALL).batch(1, 20).page(1).fpage(0).free_batch(20).misc(1, 1).scan()
    out["noscrub-nomap"] = p

    # Big zones and odd bases.
    p = Prog(frames=2048, colours=64, cpus=3, max_owners=8, base=(5, 3, 0))
    p.add(1, GROUP, 5, 0).add(2, GROUP, 5, 1, excl=True).add(3, SPARSE, 7, 9)
    p.batch(1, 200).batch(2, 200).alloc(1, 5).alloc(2, 5).alloc(1, 6).free_batch(150).scan()
    p.remove(2, 256).remove_all(2, 1000).scan()
    out["big-64col"] = p
    p = Prog(frames=1500, colours=32, flags=DEFERRED, cpus=2, base=(7, 9, 33))
    p.scrub(64).add(1, RUN, 15, 0).add(2, RUN, 15, 16).scrub(256).batch(1, 100).batch(2, 100)
    p.free_batch(100).scrub(4096).alloc(1, 4).alloc(2, 4).scan()
    out["big-odd-base"] = p
    return out


def random_inputs(n, rng):
    kinds = ["add"] * 3 + ["remove"] * 2 + ["remove_all"] + ["alloc"] * 6 + ["alloc_batch"] * 2 + \
        ["alloc_page", "free", "free", "free", "free", "free_batch"] + ["free_bad"] * 4 + \
        ["free_page", "scrub", "scrub", "drain", "reseed", "reserve", "misc"]
    out = {}
    for i in range(n):
        h = bytearray(rng.getrandbits(8) for _ in range(12))
        if i % 3 == 0:
            h[0] &= 0x7F                                # small zones mostly
        h[3] &= 0xE3 if i % 5 else 0xFF                 # NO_SCRUB rarely
        if (h[3] >> 2) & 7 == 7:
            h[3] &= ~0x20                               # keep the map
        b = bytearray(h)
        for _ in range(rng.randint(10, 120)):
            k = rng.choice(kinds)
            b.append(OPC[k])
            args = [rng.getrandbits(8) for _ in range(NARGS[k])]
            if k == "scrub":
                args[0] &= 0xFD                         # budgets 0..64, 100, 4096, 65536 ...
                if args[0] & 15 == 14:
                    args[0] ^= 4                        # never SIZE_MAX (a known bug)
            if k in ("alloc", "alloc_batch") and rng.random() < 0.7:
                args[0] |= 0x80                         # a registered owner
            b.extend(args)
        out["random-%02d" % i] = b
    return out


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    d = sys.argv[1]
    os.makedirs(d, exist_ok=True)
    files = {k: bytes(v.b) for k, v in scenarios().items()}
    files.update({k: bytes(v) for k, v in random_inputs(30, random.Random(20241126)).items()})
    for name, data in sorted(files.items()):
        with open(os.path.join(d, "seed-" + name), "wb") as f:
            f.write(data)
    print("wrote %d inputs to %s" % (len(files), d))


if __name__ == "__main__":
    main()
