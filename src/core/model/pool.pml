/*
 * pool.pml - Promela model of the labyrinth pool concurrency protocol.
 *
 * Checked by scripts/spin-check.sh (spin -a, cc -O2 -DSAFETY, exhaustive
 * search, every configuration below, the seeded bugs and the coverage runs).
 * The C side: src/core/pool.c, src/core/cpu.c, src/core/alloc.c,
 * src/core/scrub.c, src/core/owner.c (reclaim, pool_home, pool_dissolve),
 * record encoding in
 * src/core/internal.h.  Every statement group below names the C function it
 * models, in a comment.
 *
 * Granularity: every load, store and CAS of shared memory (the pool array G,
 * n, the pool lock, the frame records, owner state, the dirty-ring lock) is
 * its own Promela step.  A step may also do purely local work (registers,
 * the CPU's own pcp ring, which no other CPU touches) and ghost updates;
 * atomic{} is only ever wrapped around ONE shared access plus such local or
 * ghost work.  Two exceptions in lab_pool_exchange, argued there: the CAS
 * of the "f itself" case changes nothing on a record only we write, so it
 * shares the step of the store after it; and the re-read of n, which the
 * ring and "f itself" cases compute but mask away, is left out there.
 * Records store slot/2 (INPOOL(p)), so the frame is at 2p or 2p+1 and
 * readers disambiguate by reading G as the C code does.
 *
 * Modelled: 2 CPUs, each with a pcp, one pool of NF = 3 (or 4) frames; each
 * CPU makes OPS calls chosen nondeterministically among lab_alloc order 0
 * (pcp pop, refill from G's tail under the lock with lock_occupant), lab_free
 * order 0 of a frame it holds (CAS ALLOC->BUSY, scrub, lab_free_insert: spill
 * first if the pcp is full, then lab_pool_exchange over "G[0, n) then the
 * pcp ring" at a nondeterministic position (a G slot, a ring entry, or the
 * freed frame itself) with LAB_XCHG_TRIES tries, fallback to
 * lab_pool_insert_locked at a nondeterministic position), a spill of 1 or all
 * pcp frames (lab_pcp_drain / pcp_spill -> append), and a hostile lab_free of
 * a frame it does not hold; then it frees everything it still holds.
 * Options add order-1 alloc/free (claim, remove_slot, Fisher-Yates insert),
 * owner removal racing with the owner's allocs and frees (reclaim and the
 * post-commit DYING check), one owner for both CPUs (racing frees of one
 * block), deferred scrubbing (dirty rings, lab_scrub, ring overflow), and
 * a pool's death (REMOVAL) racing with exchanges, refills and frees.
 *
 * Abstracted away: memory is sequentially consistent (the C11 acquire /
 * release orderings are NOT checked, that needs a weak-memory checker, only
 * the interleaving logic); the record's keyed check value (the model never
 * forges records); random numbers (any slot, any position: nondeterminism,
 * so uniformity (P1) is not checked, only safety); prefetches and the
 * exchange pipeline (loads without effect); reserve and quota (0); statistics
 * and held counters; nested calls (signal handlers) and their queue;
 * slot-less CPUs (alloc0_locked); several pools and colours; pool build;
 * with TEARDOWN, removal phases 2-4 (owner 2's pool is shared, so removal
 * ends after reclaim); with REMOVAL, phases 0-2 (the owners stay ACTIVE and
 * keep calling: more behaviours than C, where only calls already in flight
 * meet the death, since it waits for the held counts to be zero); lab_scrub's frame-table walk; a pcp capacity above the frame
 * count (pcp_max = 4 > NF - 1: lab_free_insert's spill-first never runs by
 * default; -DPCP_MAX=2 scales the capacity down so it does); the pcp ring's
 * physical head (rotated to index 0: the same FIFO); several probes of
 * allocn (one probe = one block choice).  Spinning waits (pool lock,
 * lock_occupant) block until something they read changes: the same
 * behaviours minus stuttering, and a wait that can never end shows up.
 *
 * Configuration (cpp defines; spin runs cpp on this file):
 *   NF=3|4        frames in the one pool (G has NF slots)          default 3
 *   OPS=k         calls per CPU before its final frees             default 3
 *   OPS0, OPS1    the same for CPU 0 / CPU 1 alone                 default OPS
 *   XTRIES=k      LAB_XCHG_TRIES                                   default 4
 *   PCP_MAX=4|2   p->pcp_max = LAB_PCP_CAP (pcp_batch = PCP_MAX / 2) default 4
 *                 2: a CPU's ring fills up with NF = 3, so lab_free_insert
 *                 spills pcp_batch frames before the exchange (probe 22)
 *   CLAIM         CPUs may also alloc/free an order-1 block (lab_pool_claim_
 *                 locked, remove_slot, insert_locked; hostile order-1 frees)
 *   TEARDOWN      a third process removes owner 2 (CPU 1's owner):
 *                 ACTIVE->DYING, then reclaim() of its blocks; CPU 1's
 *                 lab_alloc runs the post-commit DYING check
 *   ONE_OWNER     both CPUs act for owner 1 (default: CPU c acts for owner
 *                 c+1, so a free of a frame CPU c does not hold must be
 *                 refused; with one owner such a free is legal when the
 *                 other CPU holds the frame, and only "the owner held it"
 *                 is asserted: this is the racing-free case of P4)
 *   DEFERRED      LAB_ZONE_DEFERRED_SCRUB: order-0 frees park the frame
 *                 DIRTY in the CPU's dirty ring (capacity 1, so overflow
 *                 happens); lab_scrub (a call of either CPU) scrubs and
 *                 inserts it.  Without DEFERRED the synchronous mode runs:
 *                 the scrub ghost is checked in every configuration
 *   REMOVAL       a third process kills the pool (owner.c remove_locked,
 *                 the pool's last owner): phase 2's store of POOL_DYING
 *                 (seq_cst) and the z->gen bump, phase 3 pool_home (under
 *                 the pool lock, the frame records in order from p->cursor,
 *                 which persists across retries; one not INPOOL: unlock,
 *                 retry), phase 4 pool_dissolve (pop all, records
 *                 UNASSIGNED, state FREE).  CPUs run lab_ctx_enter's catch-
 *                 up at every call (gen moved: lab_pcp_drain(dying_only));
 *                 lab_free_insert exchanges only while ACTIVE, the exchange
 *                 re-reads the state after its CAS (all positions), the
 *                 refill checks it under the lock.  Not with TEARDOWN, CLAIM
 *                 (allocn's check is not modelled), DEFERRED, PCP_MAX < NF.
 *                 A CPU that stopped with frames cached makes pool_home fail
 *                 for good (C: LAB_EAGAIN until that CPU calls again): the
 *                 remover gives up after a walk that began with both CPUs
 *                 done
 *   COVERAGE=mask report the probes (list below) the search reaches and
 *                 stop once all probes of the bit mask were reached
 *   NOCLAIM       leave the never claim out (debugging)
 *   MUTANT_*      seeded bugs, list below
 *
 * Ghost state (not in the C code):
 *   holder[f]  0, or c+1 while lab_alloc has returned f to CPU c's caller
 *              and no lab_free / reclaim commit (CAS ALLOC->BUSY) took it
 *   hblk[f]    the held frame was handed out as part of an order-1 block
 *   dirty[f]   the frame may hold an owner's data (set when handed out,
 *              cleared by lab_scrub_frames)
 *   tr[f]      f left a pcp ring (alloc's pop, a spill's pop) and its record
 *              still says PCP (until the commit's / append's record store)
 *   xg[c]      g + 1 while CPU c's exchange holds g, an entry of its own
 *              ring, BUSY (ring case: from its CAS to the store of f there)
 *   done       processes that finished
 *
 * Properties:
 *   - never claim (asserted after every step, i.e. in every reachable state):
 *     M1 a held frame has its holder's owner's record (ALLOC order 0, or
 *        ALLOC order 1 / TAIL for a block) and is neither in G[0,n) nor in
 *        any pcp (no frame held by two CPUs, or held and free);
 *     M2 a frame in a pcp (at a live ring index) is in no other pcp slot,
 *        not in G[0,n), unheld, not in transit, clean, and has record PCP
 *        (or BUSY(c) while CPU c's exchange holds it in c's ring: xg);
 *     M3 when the pool lock is free: G[0,n) holds distinct frames, each with
 *        record INPOOL(s/2) or BUSY (an exchanger holds it); every INPOOL(p)
 *        record names a frame at slot 2p or 2p+1 below n (invariant I1);
 *     M4 a frame whose record is INPOOL or PCP is clean (shared pools keep
 *        G zeroed: no dirty frame can reach any owner, sync or deferred);
 *     M5 a frame whose record is PCP is in exactly one pcp ring at a live
 *        index, or in transit out of one (tr): no cached frame is lost (a
 *        ring entry overwritten) or cached twice; no ring holds more than
 *        pcp_max frames.
 *   - inline asserts: lab_alloc hands out only unheld, clean frames; the
 *     hostile free is refused (two owners); a free of a held frame is never
 *     refused (no teardown); corrupt_array() and lab_plat_panic() are
 *     assert(false) at the C line that would panic; the exchange's CAS on
 *     an entry of its own ring (PCP -> BUSY) and on f itself (BUSY -> BUSY)
 *     never fails (C would just retry; "only G positions can fail").
 *     M6 (REMOVAL) once pool_home's walk found every record INPOOL
 *        (ghost homed, asserted there with G full and the pcps empty): no
 *        frame is held, in a pcp, in transit, or has record PCP; once
 *        pool_dissolve ran: every record UNASSIGNED and n = 0.
 *   - final check (all processes done, everything freed): the pool lock is
 *     free; G[0,n) plus the pcps (plus dirty rings) hold every frame exactly
 *     once with matching records; nothing is held.  REMOVAL, pool dissolved:
 *     G and the pcps empty, every record UNASSIGNED, state FREE.
 *   - watchdog: when nothing can move (timeout) every process has finished:
 *     no deadlock, no wait that never ends (spin's invalid-end-state check
 *     is off with a never claim; this replaces it).
 *
 * FIXED (found by this model, now in alloc.c; MUTANT_TAIL_BEFORE_CAS keeps
 * the old code): lab_free of an order > 0 block checked the tail records
 * BEFORE its commit CAS on the head, and panicked ("labyrinth: corrupt block
 * tail") when one was not TAIL.  A racing winner legitimately changes them
 * in between:
 *     1. CPU1 holds block {0,1} of owner 2 and calls lab_free(2, 0, 1); it
 *        reads the head rec[0] = ALLOC(order 1, owner 2): classify OK;
 *     2. lab_owner_remove(2) (or a second lab_free of the same block by
 *        another thread of the owner) CASes the head ALLOC -> BUSY and stores
 *        the tail rec[1] = BUSY;
 *     3. CPU1 reads rec[1] = BUSY != TAIL and panics, where it should have
 *        lost the race and returned LAB_EFREE ("of two racing frees exactly
 *        one wins", P4; lab_free's "refused with no change").
 *   lab_free now checks the tails after the CAS, while the head is BUSY and
 *   ours; nobody else writes a tail record then, so a mismatch there is real
 *   corruption (CLAIM+TEARDOWN and CLAIM+ONE_OWNER pass).
 *
 * Coverage probes (COVERAGE=mask; scripts/spin-check.sh requires each to be
 * reached, so the interleavings that matter are really explored):
 *    1 exchange: the CAS on g failed (slot contended or stale)
 *    2 exchange: g locked but not found below n: undo
 *    3 exchange: g found in the sibling slot r^1, not r
 *    4 exchange: LAB_XCHG_TRIES G positions failed: insert under the lock
 *    5 lock_occupant: CAS failed, waits for the exchanger
 *    6 lock_occupant: locked y but it sits in the sibling slot: undo
 *    7 insert_locked: occupant of r moved to slot n (Fisher-Yates)
 *    8 refill: G empty, LAB_ENOMEM
 *    9 spill of 2 frames
 *   10 lab_free: classify said OK but the CAS lost (racing frees, ONE_OWNER)
 *   11 lab_free accepted a free of a frame the other CPU held (ONE_OWNER)
 *   12 claim: aborted after taking a frame, re-inserted it (CLAIM)
 *   13 remove_slot: a tail frame of the block claimed on the way (CLAIM)
 *   14 lab_alloc saw DYING after its commit and gave the frame back (TEARDOWN)
 *   15 reclaim took a frame the client held (TEARDOWN)
 *   16 a client free lost its CAS to reclaim (TEARDOWN)
 *   17 dirty ring overflow: the oldest scrubbed at push (DEFERRED)
 *   18 lab_scrub scrubbed a frame of the other CPU's ring (DEFERRED)
 *   19 exchange done at a G slot (r < n)
 *   20 exchange done at an entry of the CPU's own ring (n <= r < n + count)
 *   21 exchange done at f itself (r = n + count: f stays at the ring's tail)
 *   22 lab_free_insert: pcp full, spill before the exchange (PCP_MAX=2)
 *   23 exchange done with G empty (n = 0: a ring position or f itself)
 *   24 exchange: the state re-read after the CAS on a G slot's frame saw
 *      DYING: record put back, insert under the lock (REMOVAL)
 *   25 pool_home's walk met a locked (BUSY) record: retry (REMOVAL)
 *   26 refill: the pool not ACTIVE under the lock, LAB_ENOMEM (REMOVAL)
 *   27 pool_home succeeded and pool_dissolve emptied the pool (REMOVAL)
 *   28 exchange: the same at an entry of the CPU's ring or f itself (REMOVAL)
 *
 * Seeded bugs; spin finds each (what catches it, in the runner's config):
 *   MUTANT_NO_RECHECK          exchange: after the CAS, no re-read of n and no
 *                              locate: write f into slot r (M3: a frame whose
 *                              CAS matched via the sibling slot overwrites
 *                              another frame)
 *   MUTANT_RECORD_BEFORE_SLOT  append: publish n, then write slots and records
 *                              (M1/M2: a stale slot turns live and names a
 *                              held or cached frame.  Only the invariant sees
 *                              it: no exchanger can lock that stale frame, its
 *                              record never matches, so nothing is lost)
 *   MUTANT_OCC_NO_RECHECK      lock_occupant: trust the CAS, skip the G[s] == y
 *                              re-check (OPS1=4: frame 1 leaves slot 1 and is
 *                              freed into slot 0 while the refill waits; the
 *                              refill takes it as slot 1's occupant, then
 *                              waits forever on slot 0: watchdog)
 *   MUTANT_INSERT_REC_FIRST    insert: records before slots and n (M3)
 *   MUTANT_REMOVE_REC_FIRST    remove_slot: record before slot (CLAIM; M2)
 *   MUTANT_FREE_STORE          lab_free: plain store instead of the CAS
 *                              (ONE_OWNER: two racing frees of a frame both
 *                              win; the loser's store makes the record BUSY
 *                              after the winner cached the frame: M2)
 *   MUTANT_NO_DYING_CHECK      lab_alloc: no post-commit owner check
 *                              (TEARDOWN; M1: reclaim already took the frame
 *                              back into the pool when the caller gets it)
 *   MUTANT_SCRUB_AFTER_INSERT  free_commit: insert, then scrub (M2 or M4: a
 *                              dirty frame in a pcp or in G)
 *   MUTANT_RING_NO_SCRUB       lab_scrub_ring: insert unscrubbed (DEFERRED;
 *                              M2 or M4)
 *   MUTANT_RING_NO_PCP_RECORD  exchange, ring case: f replaces g in the ring
 *                              but its record is not set to PCP (M2: a ring
 *                              entry with a BUSY record nobody holds)
 *   MUTANT_TAIL_OVERWRITE      lab_free_insert without the spill-first (with
 *                              PCP_MAX=2): a free with a full ring writes f at
 *                              index count = pcp_max, i.e. over the head entry
 *                              (M2: f BUSY in the ring; M5: the head frame's
 *                              record says PCP but no ring has it: lost).  The
 *                              bug this change had before the spill moved
 *                              ahead of the exchange.
 *   MUTANT_NO_POSTCAS_STATE    exchange: no re-read of the pool state after
 *                              the CAS (REMOVAL; pool_home's assert: the walk
 *                              passed g, stopped at f BUSY; the exchange locks
 *                              g, puts f in g's slot; the retried walk finds f
 *                              INPOOL and calls the pool home with g on its
 *                              way into a pcp)
 *   MUTANT_REFILL_FROM_DYING   refill: no state check under the lock
 *                              (REMOVAL; pool_dissolve's assert: a refill
 *                              between the walk and the dissolve takes frames
 *                              into a pcp, they are never dissolved)
 *   MUTANT_TAIL_BEFORE_CAS     lab_free order 1: the tail check before the
 *                              commit CAS (the FIXED bug above; CLAIM +
 *                              ONE_OWNER: the panic assert on a racing free)
 *   MUTANT_STALE_N + MUTANT_REC_FIRST together (M2), but each ALONE is
 *   harmless under sequential consistency, and spin agrees (runner: equiv):
 *   MUTANT_STALE_N             exchange: locate against the n read before the
 *                              CAS.  A frame with a matching INPOOL record is
 *                              in a live slot, or in a slot an append is about
 *                              to publish, and the slot was written first.
 *   MUTANT_REC_FIRST           append: record before slot (n still last): an
 *                              exchanger that locks the frame re-reads n, does
 *                              not find it below n and undoes.
 *   So the ordering rules "slot before record" and "re-read n" of pool.c are
 *   two defences of one hazard; under SC either suffices (under C11 memory
 *   ordering both are there for the acquire/release pairing as well).
 */

#ifndef NF
#define NF 3
#endif
#ifndef OPS
#define OPS 3
#endif
#ifndef XTRIES
#define XTRIES 4         /* LAB_XCHG_TRIES */
#endif
#ifndef OPS0
#define OPS0 OPS         /* operations of CPU 0 */
#endif
#ifndef OPS1
#define OPS1 OPS         /* operations of CPU 1 */
#endif
#define NCPU 2
#ifndef PCP_MAX
#define PCP_MAX 4        /* p->pcp_max = LAB_PCP_CAP, the ring's capacity: 4
                            (never full at a free with NF <= 4 frames), or 2
                            (-DPCP_MAX=2: lab_free_insert's spill-first runs) */
#endif
#define BATCH (PCP_MAX / 2)  /* p->pcp_batch = pcp_max / 2 (pool.c build)   */
/* RSZ: the ring's entries in the model.  A CPU that frees a frame holds it,
 * so its ring has at most NF - 1 entries then, and f's tail write lands at
 * index count <= NF - 1: a ring of min(PCP_MAX, NF) entries loses nothing. */
#if PCP_MAX < NF
#define RSZ PCP_MAX
#else
#define RSZ NF
#endif
/* the ring index of position "count" (C: (head + count) & (LAB_PCP_CAP - 1),
 * head rotated to 0): count itself unless the ring is full, then the head */
#define TAILIX(c) ((c) % PCP_MAX)
#define DIRTY_CAP 1      /* LAB_DIRTY_CAP, 1 so the overflow path runs       */
#define NONE 255         /* LAB_NONE                                         */

/* Coverage probes (list in the header).  -DCOVERAGE=mask: the first time the
 * search passes probe k, pan prints "PROBE k reached" (embedded C, not in the
 * state vector); once every probe of the mask was seen it prints "PROBES
 * DONE" and stops.  PROBE_AT(k) is followed by a statement, without a
 * separator.  Without COVERAGE both macros are empty: the probes cost nothing
 * in the real checks. */
#ifdef COVERAGE
c_decl { unsigned probe_seen; }
#define PROBE_AT(k) c_code { if (!(probe_seen >> k & 1)) { probe_seen |= 1u << k; \
	printf("PROBE %d reached\n", k); if ((probe_seen & (COVERAGE)) == (COVERAGE)) { \
	printf("PROBES DONE\n"); exit(0); } } };
#define PROBE_IF(c, k) if :: (c) -> PROBE_AT(k) skip :: else fi;
#else
#define PROBE_AT(k)
#define PROBE_IF(c, k)
#endif

#if defined(TEARDOWN) || defined(REMOVAL)
#define NPROC 3
#else
#define NPROC 2
#endif
#if defined(REMOVAL) && (defined(TEARDOWN) || defined(CLAIM) || defined(DEFERRED) || PCP_MAX < NF)
#error "REMOVAL: not modelled with TEARDOWN, CLAIM, DEFERRED or PCP_MAX < NF"
#endif

/* ---- record encoding (internal.h "record.c: the frame table") -------------
 * In C bit 31 set = IN POOL with bits 30..0 = slot >> 1; otherwise a state
 * with owner/order/cpu ids and a keyed check (the check is abstracted away:
 * the model never forges records).  Here a byte:                           */
#define INPOOL(p)   (p)               /* rec_pos(slot) = REC_INPOOL|slot>>1 */
#define IS_INPOOL(v) ((v) < 8)
#define R_PCP       8                 /* ST_PCP, id = pool (one pool)       */
#define BUSY(c)     (10 + (c))        /* ST_BUSY, id = CPU c (2: remover)   */
#define ALLOC0(o)   (20 + (o))        /* ST_ALLOC, a = order 0, id = owner  */
#define ALLOC1(o)   (24 + (o))        /* ST_ALLOC, a = order 1              */
#define TAIL1(o)    (28 + (o))        /* ST_TAIL,  a = order 1              */
#define DIRTY(o)    (32 + (o))        /* ST_DIRTY, id = previous owner      */
#define IS_BUSY(v)  ((v) >= 10 && (v) < 13)
#define R_UNAS      40                /* ST_UNASSIGNED (pool_dissolve)      */

#ifdef ONE_OWNER
#define OWN(c) 1
#else
#define OWN(c) ((c) + 1)
#endif

#define O_ACTIVE 1
#define O_DYING 2
#define P_FREE 0         /* POOL_FREE, POOL_ACTIVE, POOL_DYING (REMOVAL)     */
#define P_ACTIVE 1
#define P_DYING 2

/* ---- shared state ------------------------------------------------------- */
byte G[NF];           /* the pool's array (gstore through gslot)            */
byte n = NF;          /* p->n                                               */
byte plock = 0;       /* p->lock: 0 or holder id + 1                        */
byte rec[NF];         /* z->rec                                             */
byte ostate[3];       /* owners 1, 2: o->state                              */

typedef Ring { byte e[RSZ]; byte cnt };
Ring pcp[NCPU];       /* per-CPU FIFO, e[0] oldest (the C ring with its head
                         rotated to 0: same FIFO, canonical states; entries
                         at index >= cnt are dead and kept 0)              */
#ifdef DEFERRED
Ring dring[NCPU];     /* cpu->dirty[], dcount (under dlock)                 */
byte dlock[NCPU];     /* cpu->dlock                                         */
#endif

/* ghost */
byte holder[NF];
bit dirty[NF];
bit hblk[NF];         /* held frame was handed out in an order-1 block        */
byte xg[NCPU];        /* g + 1 while CPU c's exchange holds g of its own ring
                         BUSY at a live index (ring case, CAS to the store) */
bit tr[NF];           /* f left a pcp ring and its record still says PCP:
                         popped by alloc (until the commit's store) or by a
                         spill (until append's record store)               */
byte done = 0;
bit ready = 0;        /* lab_pool_build done (the never claim waits for it)   */
#ifdef REMOVAL
byte pstate = P_ACTIVE; /* p->state                                          */
byte gen = 0;         /* z->gen (bumped once: the pool's death)             */
bit homed = 0;        /* ghost: pool_home's walk found every frame in G     */
bit dissolved = 0;    /* ghost: pool_dissolve emptied G, records UNASSIGNED */
#endif

/* frame f is in G[0, n) */
#define INLIVE(f) ((n > 0 && G[0] == (f)) || (n > 1 && G[1] == (f)) || \
                   (n > 2 && G[2] == (f)) || (NF > 3 && n > 3 && G[NF-1] == (f)))

/* ---- pcp ring (cpu.c pcp_put, alloc0_pcp's pop): private to the CPU ----- */
inline pcp_put(c, x)
{
	pcp[c].e[pcp[c].cnt] = x; pcp[c].cnt++
}
inline pcp_pop(c, x)  /* x = ring[head]; head++; count-- */
{
	x = pcp[c].e[0];
	pcp[c].e[0] = pcp[c].e[1];
#if RSZ > 2
	pcp[c].e[1] = pcp[c].e[2];
#endif
#if RSZ > 3
	pcp[c].e[2] = pcp[c].e[3];
#endif
	pcp[c].e[RSZ-1] = 0;
	pcp[c].cnt--;
	tr[x] = 1                                       /* ghost: out of the ring, still PCP */
}

/* ---- locks (internal.h lock_get / lock_put) ----------------------------
 * lock_get spins on a CAS 0 -> me+1: modelled as a blocking CAS (spinning on
 * a held lock is stuttering). */
inline lock_get()  { atomic { plock == 0 -> plock = me + 1 } }
inline lock_put()  { plock = 0 }   /* st_release(l, 0) */

/* ---- pool.c lock_occupant(s): lock the occupant of live slot s ----------
 * Pool lock held.  Retries until it holds the frame in slot s.  A failed CAS
 * retries; while neither G[s] nor the record changed a retry would do
 * exactly the same, so the model blocks until one of them changes (this
 * makes a persistent "strange" state, which C turns into corrupt_array()
 * after 64 rounds, or a circular wait, show up at the watchdog). */
inline lock_occupant(sl, y)
{
	do
	:: y = G[sl];                                   /* y = ld_acquire(gslot(s)) */
	   atomic {                                     /* cas_rec(y, rec_pos(s), busy) */
		if
		:: rec[y] == INPOOL(sl / 2) -> rec[y] = BUSY(me); ok = 1
		:: else -> w = rec[y]; ok = 0
		fi
	   };
	   if
	   :: ok ->
#ifdef MUTANT_OCC_NO_RECHECK
		break
#else
		if
		:: G[sl] == y -> break                  /* ld_relaxed(gslot(s)) == y: return y */
		:: else -> PROBE_AT(6) rec[y] = INPOOL(sl / 2)  /* sibling s^1: st_release(rec[y], rec_pos(s)) */
		fi
#endif
	   :: else ->
		PROBE_AT(5) (G[sl] != y || rec[y] != w) /* strange/relax: wait for a change, retry */
	   fi
	od;
	w = 0; ok = 0
}

/* ---- pool.c lab_pool_pop_locked(want): take up to want frames from the tail,
 * pool lock held; records left BUSY in out[]. (nested = false: never gives up) */
inline pop_locked(want)
{
	n1 = n;                                         /* n = ld_relaxed(&p->n) */
	k = (want < n1 -> want : n1);                   /* k = want < n ? want : n */
	j = 0;
	do
	:: j < k ->
		os = n1 - 1 - j;
		lock_occupant(os, y);                   /* y = lock_occupant(n - 1 - j) */
		atomic { out[j] = y; j++; y = 0 }       /* out[j] = y */
	:: else -> break
	od;
	atomic { n = n1 - k; j = 0; n1 = 0 }            /* st_release(&p->n, n - k) */
}

/* ---- pool.c lab_pool_append_locked(in = out[0..k)): slot, record, n ----- */
inline append_locked()
{
	n1 = n;                                         /* n = ld_relaxed(&p->n) */
	assert(n1 + k <= NF);                           /* n + k > cap: corrupt_array() */
#ifdef MUTANT_RECORD_BEFORE_SLOT
	n = n1 + k;                                     /* MUTANT: n published first */
#endif
	j = 0;
	do
	:: j < k ->
#ifdef MUTANT_REC_FIRST
		atomic { rec[out[j]] = INPOOL((n1 + j) / 2); tr[out[j]] = 0 }  /* MUTANT: record first */
		G[n1 + j] = out[j];
#else
		G[n1 + j] = out[j];                     /* st_relaxed(gslot(n + j), in[j]) */
		atomic { rec[out[j]] = INPOOL((n1 + j) / 2); tr[out[j]] = 0 }
		                                        /* st_release(rec[in[j]], rec_pos(n + j)) */
#endif
		j++
	:: else -> break
	od;
#ifndef MUTANT_RECORD_BEFORE_SLOT
	n = n1 + k;                                     /* st_release(&p->n, n + k) */
#endif
	atomic { j = 0; n1 = 0; out[0] = 0; out[1] = 0 }
}

/* ---- pool.c lab_pool_insert_locked(f): inside-out Fisher-Yates at a random
 * r in [0, n]; the occupant of r moves to slot n.  Pool lock held. -------- */
inline insert_locked(fr)
{
	n1 = n;                                         /* n = ld_relaxed(&p->n) */
	assert(n1 + 1 <= NF);                           /* n + 1 > cap: corrupt_array() */
	if                                              /* r = lab_bound(u, n + 1) */
	:: r = 0
	:: n1 >= 1 -> r = 1
	:: n1 >= 2 -> r = 2
#if NF > 3
	:: n1 >= 3 -> r = 3
#endif
	fi;
	if
	:: r == n1 ->                                   /* r == n: append_locked(&f, 1) */
		atomic { out[0] = fr; k = 1 };
		append_locked();
		k = 0
	:: else ->
		PROBE_AT(7) lock_occupant(r, y);        /* y = lock_occupant(r) */
#ifdef MUTANT_INSERT_REC_FIRST
		rec[y] = INPOOL(n1 / 2);                /* MUTANT: records first */
		rec[fr] = INPOOL(r / 2);
		G[n1] = y;
		G[r] = fr;
		n = n1 + 1;
#else
		G[n1] = y;                              /* st_relaxed(gslot(n), y) */
		G[r] = fr;                              /* st_relaxed(gslot(r), f) */
		n = n1 + 1;                             /* st_release(&p->n, n + 1) */
		rec[y] = INPOOL(n1 / 2);                /* st_release(rec[y], rec_pos(n)) */
		rec[fr] = INPOOL(r / 2);                /* st_release(rec[f], rec_pos(r)) */
#endif
	fi;
	atomic { r = 0; y = 0; n1 = 0 }
}

/* ---- cpu.c pcp_spill / lab_pcp_drain: move the kk oldest pcp frames to
 * G's tail under the pool lock (their records are PCP, not BUSY). -------- */
inline pcp_spill(kk)
{
	atomic {                                        /* out[j] = ring[head++]; count -= n */
		k = kk;
		pcp_pop(me, out[0]);
		if :: k > 1 -> pcp_pop(me, out[1]) :: else fi
	};
	PROBE_IF(k > 1, 9)
	lock_get();                                     /* lock_get(&p->lock) */
	append_locked();                                /* lab_pool_append_locked(out, n) */
	lock_put();                                     /* lock_put(&p->lock) */
	k = 0
}

/* ---- cpu.c lab_pcp_refill: pop up to BATCH frames from G's tail (cpu.c
 * takes min(pcp_batch, LAB_PCP_REFILL = 4), which is pcp_batch at the
 * model's sizes) (the
 * records prefetch before the lock is omitted: it only loads). ------------- */
inline pcp_refill()
{
	lock_get();                                     /* lock_get(&p->lock) */
#if defined(REMOVAL) && !defined(MUTANT_REFILL_FROM_DYING)
	if                                              /* ld_relaxed(&p->state) != POOL_ACTIVE: */
	:: pstate != P_ACTIVE -> PROBE_AT(26) k = 0     /* lock_put; return LAB_ENOMEM */
	:: else -> pop_locked(BATCH)
	fi;
#else
	pop_locked(BATCH);                              /* k = lab_pool_pop_locked(..., BATCH) */
#endif
	lock_put();                                     /* lock_put(&p->lock) */
	j = 0;
	do
	:: j < k ->                                     /* rec[got[j]] = PCP; pcp_put */
		atomic { rec[out[j]] = R_PCP; pcp_put(me, out[j]); out[j] = 0; j++ }
	:: else -> break
	od;
	j = 0
}

/* ---- pool.c lab_pool_exchange(f): inside-out Fisher-Yates over the
 * arrangement "G[0, n), then this CPU's pcp ring from its head": f (record
 * BUSY, ours) joins at the end, position n + count (the ring's tail), then
 * trades places with the frame g at a uniformly drawn position r in
 * [0, n + count]; the ring grows by one.  Three kinds of position (C runs
 * the same instructions for all, with masked selections; the model branches):
 *   r < n          a G slot, shared: CAS g's record INPOOL(r/2) -> BUSY, re-read
 *                  n, locate g at r's even slot or its sibling below n (else
 *                  undo, another try); G[s] = f, rec[f] = INPOOL(s/2);
 *   n <= r < n + count  the ring entry at head + r - n, private: g is a PCP
 *                  frame of this CPU; CAS PCP -> BUSY (cannot fail: asserted),
 *                  ring entry = f, rec[f] = PCP;
 *   r = n + count  f itself: CAS BUSY -> BUSY (no change), rec[f] = PCP.
 * Then (G and ring) ring[tail] = g, rec[g] = PCP; count + 1.  Only G
 * positions fail; ok = 0 after LAB_XCHG_TRIES failures (nothing changed, the
 * caller inserts f under the pool lock).  count is read once, before the
 * tries; n at every try.  The nondeterministic r stands for lab_bound(next_u,
 * n + count + 1); pipeline_advance and position()'s prefetches are loads
 * without effect (omitted). ------------------------------------------------ */
inline exchange(fr)
{
	t = 0; ok = 0;
	do
	:: t < XTRIES ->                                /* for t < LAB_XCHG_TRIES */
		atomic {
			if                              /* before the loop, private: */
			:: t == 0 ->
				cn = pcp[me].cnt;       /* count = ld_relaxed(&pcp->count) */
#if PCP_MAX >= NF && !defined(MUTANT_TAIL_OVERWRITE)
				assert(cn < PCP_MAX);   /* why free_insert omits the spill test */
#endif
				pcp[me].e[TAILIX(cn)] = fr  /* st_relaxed(tail, f): position n + count */
			:: else
			fi;
			n1 = n; t++                     /* n = ld_acquire(&p->n) */
		};
		atomic {                                /* r = lab_bound(next_u, n + count + 1); */
			if                              /* slot = position(r, n); g = ld_relaxed(slot) */
			:: r = 0
			:: n1 + cn >= 1 -> r = 1
			:: n1 + cn >= 2 -> r = 2
			:: n1 + cn >= 3 -> r = 3
#if NF > 3
			:: n1 + cn >= 4 -> r = 4
#endif
			fi;
			if
			:: r < n1 -> g = G[r]           /* in_g: gslot(r), shared */
			:: else -> g = pcp[me].e[TAILIX(r - n1)]  /* ring[(head + r - n) & mask], ours
			                                   (r = n + count: the tail, g = f) */
			fi
		};
		if
		:: r < n1 ->                            /* ---- a G slot */
			atomic {                        /* cas_rec(g, v = rec_pos(r), gbusy) */
				if
				:: rec[g] == INPOOL(r / 2) -> rec[g] = BUSY(me); ok = 1
				:: else -> ok = 0
				fi
			};
			if
			:: !ok -> PROBE_AT(1) skip      /* continue: another position */
#if defined(REMOVAL) && !defined(MUTANT_NO_POSTCAS_STATE)
			:: ok && pstate != P_ACTIVE ->  /* ld(&p->state, seq_cst) != POOL_ACTIVE: */
				PROBE_AT(24) atomic {   /* st_release(rg, v); return false */
					rec[g] = INPOOL(r / 2); ok = 0
				};
				break
			:: ok && pstate == P_ACTIVE ->
#else
			:: else ->
#endif
#if defined(MUTANT_NO_RECHECK)
				s = r;                  /* MUTANT: no re-read of n, no locate */
#else
# ifdef MUTANT_STALE_N
				n2 = n1;                /* MUTANT: locate against the old n */
# else
				n2 = n;                 /* nn = ld_acquire(&p->n) (re-read) */
# endif
				s0 = (r / 2) * 2;       /* even = r & ~1u; c0 = slot - (r & 1), c1 = c0 + 1 */
				if
				:: s0 < n2 && G[s0] == g -> s = s0      /* hit0: even < nn && ld(c0) == g */
				:: else ->
					if
					:: s0 + 1 < n2 && G[s0 + 1] == g -> s = s0 + 1  /* hit1 */
					:: else -> s = NONE
					fi
				fi;
#endif
				if
				:: s == NONE ->         /* !(hit0 | hit1): st_release(rec[g], rec_pos(r)); continue */
					PROBE_AT(2) atomic { rec[g] = INPOOL(r / 2); ok = 0 }
				:: else ->
					PROBE_IF(s != r, 3)
					G[s] = fr;      /* st_relaxed(at, f) */
					rec[fr] = INPOOL(s / 2);  /* st_release(rec[f], rec_pos(s)) */
					atomic {        /* st_relaxed(tail, g); st_release(rec[g], gpcp); */
						pcp[me].e[TAILIX(cn)] = g;      /* count + 1 (private) */
						rec[g] = R_PCP; pcp[me].cnt = cn + 1
					};
					PROBE_AT(19) break
				fi
			fi
		:: r >= n1 && r < n1 + cn ->            /* ---- an entry of our ring */
			atomic {                        /* cas_rec(g, v = gpcp, gbusy): g is in our
			                                   ring, nobody else changes a PCP record
			                                   (others only read it: a hostile free
			                                   is refused either way): cannot fail */
				assert(rec[g] == R_PCP);
				rec[g] = BUSY(me); xg[me] = g + 1; s = TAILIX(r - n1)
			};
#if defined(REMOVAL) && !defined(MUTANT_NO_POSTCAS_STATE)
			if                              /* the state re-read (all positions) */
			:: pstate != P_ACTIVE ->        /* st_release(rg, v = gpcp); return false */
				PROBE_AT(28) atomic { rec[g] = R_PCP; xg[me] = 0; ok = 0; s = 0 };
				break
			:: else
			fi;
#endif
			/* nn = ld_acquire(&p->n) and the hit tests: in_g = 0 masks them to
			 * hit0 = (ld(slot) == g), true (the slot is ours): no step */
			atomic {                        /* st_relaxed(at = slot, f); */
				pcp[me].e[s] = fr;
#ifndef MUTANT_RING_NO_PCP_RECORD
				rec[fr] = R_PCP;        /* st_release(rec[f], fpcp) */
#endif
				xg[me] = 0
			};
			atomic {                        /* st_relaxed(tail, g); st_release(rec[g], gpcp); */
				pcp[me].e[TAILIX(cn)] = g;      /* count + 1 (private) */
				rec[g] = R_PCP; pcp[me].cnt = cn + 1; ok = 1
			};
			PROBE_IF(n1 == 0, 23) PROBE_AT(20) break
		:: else ->                              /* ---- r = n + count: f itself */
			/* cas_rec(f, fbusy, fbusy) changes nothing, and rec[f] (BUSY, ours)
			 * is only read by others: it commutes with every other step, so it
			 * shares the step of the stores.  st_relaxed(at = tail, f);
			 * st_release(rec[f], fpcp); st_relaxed(tail, g = f);
			 * st_release(rec[g], gpcp): one value stored twice; count + 1 */
#if defined(REMOVAL) && !defined(MUTANT_NO_POSTCAS_STATE)
			if                              /* state re-read after the (no-op) CAS; */
			:: pstate != P_ACTIVE ->        /* DYING: st_release(rf, fbusy), return false */
				PROBE_AT(28) ok = 0; break
			:: else
			fi;
#endif
			atomic {
				assert(g == fr && rec[fr] == BUSY(me));
				rec[fr] = R_PCP; pcp[me].cnt = cn + 1; ok = 1
			};
			PROBE_IF(n1 == 0, 23) PROBE_AT(21) break
		fi
	:: else -> break                                /* tries exhausted: return false */
	od;
	atomic {
		if                                      /* failed: f's copy at the tail is a */
		:: !ok && TAILIX(cn) >= pcp[me].cnt ->  /* dead entry (C leaves it): canonical 0 */
			pcp[me].e[TAILIX(cn)] = 0
		:: else
		fi;
		t = 0; n1 = 0; n2 = 0; r = 0; s = 0; s0 = 0; g = 0; cn = 0
	}
}

/* ---- cpu.c lab_free_insert(f) for a CPU with a pcp (not nested): room for
 * one more first (the exchange writes f at the ring's tail), the exchange,
 * else insert under the pool lock at a random position. ------------------ */
inline free_insert(fr)
{
#if PCP_MAX < NF && !defined(MUTANT_TAIL_OVERWRITE)
	if                                              /* ld_relaxed(&pcp->count) >= p->pcp_max: */
	:: pcp[me].cnt >= PCP_MAX ->                    /* pcp_spill(.., p->pcp_batch) */
		PROBE_AT(22) pcp_spill(BATCH)
	:: else
	fi;
#endif
	/* (PCP_MAX >= NF: the test is left out, it never holds: count <= NF - 1
	 * when a frame is freed, since the frame is in no ring.  MUTANT_TAIL_
	 * OVERWRITE leaves it out with PCP_MAX = 2: the tail write at index
	 * count of a full ring lands on the head entry, the bug the spill-first
	 * order fixed.) */
#ifdef REMOVAL
	if                                              /* only a live pool's frames go */
	:: pstate == P_ACTIVE -> exchange(fr)           /* through the pcp (ld_relaxed) */
	:: else -> ok = 0                               /* dying: insert under the lock */
	fi;
#else
	exchange(fr);                                   /* lab_pool_exchange(.., f) */
#endif
	if
	:: ok -> ok = 0                                 /* return true */
	:: else ->
		PROBE_AT(4) lock_get();                 /* lock_get(&p->lock) */
		insert_locked(fr);                      /* lab_pool_insert_locked(f, u) */
		lock_put()                              /* lock_put(&p->lock) */
	fi
}

#ifdef REMOVAL
/* ---- internal.h lab_ctx_enter: z->gen moved (a pool died) -> cpu.c
 * lab_ctx_enter_rare: gen_seen = gen; lab_pcp_drain(dying_only): a pcp of
 * a pool that is not ACTIVE goes back to G's tail (pcp_spill of count). --- */
inline ctx_enter()
{
	if
	:: gen != gs ->                                 /* ld_acquire(&z->gen) != cpu->gen_seen */
		gs = gen;                               /* cpu->gen_seen = ld_acquire(&z->gen) */
		if                                      /* n = count; n && state != ACTIVE */
		:: pcp[me].cnt > 0 && pstate != P_ACTIVE -> pcp_spill(pcp[me].cnt)
		:: else
		fi
	:: else
	fi
}
#endif

#ifdef DEFERRED
/* ---- scrub.c dirty-ring lock (lock_get / lock_put on cpu->dlock) -------- */
inline dlock_get(c) { atomic { dlock[c] == 0 -> dlock[c] = me + 1 } }
inline dlock_put(c) { dlock[c] = 0 }

/* ---- scrub.c lab_dirty_push(f, owner): park f DIRTY; ring full: scrub and
 * insert the oldest. ---------------------------------------------------- */
inline dirty_push(fr)
{
	rec[fr] = DIRTY(OWN(me));                       /* st_release(rec[f], DIRTY(owner)) */
	dlock_get(me);                                  /* lock_get(&cpu->dlock) */
	atomic {                                        /* dcount == CAP: old = ring_take; ring_put */
		if
		:: dring[me].cnt == DIRTY_CAP -> old = dring[me].e[0]; dring[me].e[0] = 0; dring[me].cnt--
		:: else -> old = NONE
		fi;
		dring[me].e[dring[me].cnt] = fr; dring[me].cnt++
	};
	dlock_put(me);                                  /* lock_put(&cpu->dlock) */
	if
	:: old != NONE ->
		PROBE_AT(17) rec[old] = BUSY(me);       /* st_relaxed(rec[old], BUSY) */
		dirty[old] = 0;                         /* lab_scrub_frames(old, 1) */
		free_insert(old)                        /* lab_free_insert(old) */
	:: else
	fi;
	old = 0
}

/* ---- scrub.c lab_scrub -> lab_scrub_ring(ring of CPU rc): take the ring's
 * frames under its dlock, then BUSY, scrub, lab_free_insert each. -------- */
inline scrub_ring(rc)
{
	dlock_get(rc);                                  /* lock_get(&ring_cpu->dlock) */
	atomic {                                        /* batch[k++] = ring_take() */
		old = (dring[rc].cnt > 0 -> dring[rc].e[0] : NONE);
		dring[rc].e[0] = 0; dring[rc].cnt = 0
	};
	dlock_put(rc);                                  /* lock_put */
	if
	:: old != NONE ->
		PROBE_IF(rc != me, 18)
		rec[old] = BUSY(me);                    /* st_relaxed(rec[f], BUSY) */
#ifndef MUTANT_RING_NO_SCRUB
		dirty[old] = 0;                         /* lab_scrub_frames(f, 1) */
#endif
		free_insert(old)                        /* lab_free_insert(f) */
	:: else
	fi;
	old = 0
}
#endif

/* ---- alloc.c free_commit for K == 1 with a pcp: scrub, lab_free_insert (or
 * lab_dirty_push when deferred). ----------------------------------------- */
inline free_commit0(fr)
{
#ifdef DEFERRED
	dirty_push(fr)                                  /* lab_dirty_push(c, f, owner) */
#else
# ifdef MUTANT_SCRUB_AFTER_INSERT
	free_insert(fr);                                /* MUTANT: insert ... */
	dirty[fr] = 0                                   /* ... then scrub */
# else
	dirty[fr] = 0;                                  /* lab_scrub_frames(c, f, 1): BUSY, ours */
	free_insert(fr)                                 /* lab_free_insert(c, pool, f) */
# endif
#endif
}

/* ---- alloc.c lab_free(owner, f, order 0): classify, CAS ALLOC -> BUSY,
 * free_commit.  legit: the caller holds f; else the hostile double free. -- */
inline lab_free0(fr, legit)
{
#ifdef TEARDOWN
	if                                              /* live_owner(): state ACTIVE */
	:: ostate[OWN(me)] == O_ACTIVE -> ok = 1
	:: else -> ok = 0
	fi;
	if :: ok ->
#endif
	v = rec[fr];                                    /* v = ld_acquire(&z->rec[f]) */
	if
	:: v == ALLOC0(OWN(me)) ->                      /* classify() == LAB_OK */
		atomic {                                /* CAS(rec[f], v, busy) */
			if
			:: rec[fr] == v ->
#ifdef ONE_OWNER
				assert(holder[fr] != 0);        /* ALLOC record: the owner holds it */
				PROBE_IF(holder[fr] != me + 1, 11)
#else
				assert(holder[fr] == me + 1);   /* ALLOC(our owner): we hold it */
#endif
				holder[fr] = 0;
				rec[fr] = BUSY(me); ok = 1
			:: else ->                              /* lost a race: refused */
#ifdef TEARDOWN
				PROBE_AT(16)
#endif
#ifdef ONE_OWNER
				PROBE_AT(10)
#endif
				ok = 0
			fi
		}
	:: else -> ok = 0                               /* classify: EFREE/EOWNER/EORDER */
	fi;
#ifdef MUTANT_FREE_STORE
	if                                              /* MUTANT: no CAS, a plain store */
	:: v == ALLOC0(OWN(me)) && !ok ->
		atomic { holder[fr] = 0; rec[fr] = BUSY(me); ok = 1 }
	:: else
	fi;
#endif
#ifdef TEARDOWN
	:: else
	fi;
#endif
	if
	:: ok ->
#if !defined(ONE_OWNER) && !defined(MUTANT_FREE_STORE)
		assert(legit);                          /* a hostile free is never accepted */
#endif
		ok = 0;
		free_commit0(fr)                        /* free_commit(..., K = 1, v) */
	:: else ->
#if !defined(ONE_OWNER) && !defined(TEARDOWN)
		assert(!legit)                          /* a free of a held frame succeeds */
#else
		skip
#endif
	fi;
	v = 0
}

/* ---- alloc.c give_back(f, K = 1, own rng): lab_free_insert ------------- */
#define give_back0(fr) free_insert(fr)

/* ---- alloc.c lab_alloc commit: head record ALLOC, then (owner teardown
 * race) re-check the owner state; DYING: CAS ALLOC -> BUSY and give back. */
inline alloc_commit0(x)
{
#ifdef TEARDOWN
	atomic { rec[x] = ALLOC0(OWN(me)); tr[x] = 0 }  /* st_release(&z->rec[f], head) */
# ifdef MUTANT_NO_DYING_CHECK
	atomic { assert(holder[x] == 0 && !dirty[x]); holder[x] = me + 1; dirty[x] = 1 }
# else
	atomic {                                        /* ld_relaxed(&o->state) != OWNER_ACTIVE ? */
		if
		:: ostate[OWN(me)] == O_ACTIVE ->        /* LAB_OK: handed to the caller */
			assert(holder[x] == 0 && !dirty[x]);
			holder[x] = me + 1; dirty[x] = 1; ok = 0
		:: else -> ok = 1
		fi
	};
	if
	:: ok ->
		atomic {                                /* CAS(rec[f], head, busy) */
			if
			:: rec[x] == ALLOC0(OWN(me)) -> rec[x] = BUSY(me); ok = 1
			:: else -> ok = 0               /* reclaim took it: LAB_ENOOWNER */
			fi
		};
		if
		:: ok -> PROBE_AT(14) ok = 0; give_back0(x)     /* give_back(&c, pool, f, 1) */
		:: else
		fi
	:: else
	fi
# endif
#else
	atomic {                                        /* st_release(&z->rec[f], head); LAB_OK */
		rec[x] = ALLOC0(OWN(me)); tr[x] = 0;
		assert(holder[x] == 0 && !dirty[x]);    /* never handed out twice, never dirty */
		holder[x] = me + 1; dirty[x] = 1        /* the caller writes its data */
	}
#endif
}

/* ---- alloc.c lab_alloc(order 0) with a pcp: alloc0_pcp ------------------ */
inline lab_alloc0()
{
#ifdef TEARDOWN
	if                                              /* live_owner(): ACTIVE */
	:: ostate[OWN(me)] == O_ACTIVE -> ok = 1
	:: else -> ok = 0
	fi;
	if :: ok ->
	ok = 0;
#endif
	if                                              /* pcp->count == 0: lab_pcp_refill */
	:: pcp[me].cnt == 0 -> pcp_refill()
	:: else -> k = 1
	fi;
	if
	:: k == 0 -> PROBE_AT(8) skip                   /* LAB_ENOMEM */
	:: else ->
		/* reserve = 0 here: the in_reserve test (a load of n) never fails */
		atomic { pcp_pop(me, x); k = 0 };       /* x = ring[head]; head++; count-- */
		assert(rec[x] == R_PCP);                /* else panic("corrupt per-CPU cache") */
		alloc_commit0(x)
	fi;
#ifdef TEARDOWN
	:: else
	fi;
#endif
	x = 0
}

#ifdef CLAIM
/* ---- pool.c remove_slot(s): move the tail into s; a tail frame of our
 * block [first, first+2) is claimed on the way. Pool lock held. ---------- */
inline remove_slot(s)
{
	do
	:: atomic { n1 = n; t = n1 - 1 };              /* n = ld_relaxed(&p->n); t = n - 1 */
		if
		:: t == s -> n = t; break                /* st_release(&p->n, t); return */
		:: else ->
			lock_occupant(t, y);             /* y = lock_occupant(t) */
			if
			:: y >= first && y < first + 2 -> /* y - first < K: claim it too */
				PROBE_AT(13) n = t;      /* st_release(&p->n, t) */
				claimed++
			:: else ->
#ifdef MUTANT_REMOVE_REC_FIRST
				rec[y] = INPOOL(s / 2);  /* MUTANT: record first */
				G[s] = y;
				n = t;
#else
				G[s] = y;                /* st_relaxed(gslot(s), y) */
				n = t;                   /* st_release(&p->n, t) */
				rec[y] = INPOOL(s / 2);  /* st_release(rec[y], rec_pos(s)) */
#endif
				break
			fi
		fi
	od;
	atomic { n1 = 0; t = 0; y = 0 }
}

/* ---- pool.c lab_pool_claim_locked(first, order 1); ok = 1 on success ---- */
inline claim_locked()
{
	ok = 1;
	if                                              /* pre-check: both records IN POOL */
	:: !IS_INPOOL(rec[first]) -> ok = 0
	:: else
	fi;
	if
	:: ok && !IS_INPOOL(rec[first + 1]) -> ok = 0
	:: else
	fi;
	if
	:: ok ->
		claimed = 0; i = 0;
		do
		:: i < 2 ->
			ff = first + i;
			v = rec[ff];                     /* v = ld_acquire(&z->rec[f]) */
			if
			:: v == BUSY(me) -> i++          /* claimed from the tail already */
			:: else ->
				if
				:: !IS_INPOOL(v) -> ok = 0; break   /* goto abort */
				:: else
				fi;
				atomic {                 /* cas_rec(f, v, busy) */
					if
					:: rec[ff] == v -> rec[ff] = BUSY(me); ok = 1
					:: else -> ok = 0
					fi
				};
				if :: !ok -> break :: else fi;      /* goto abort */
				n1 = n;                  /* locate(f, v, ld_relaxed(&p->n)) */
				s0 = (v & 7) * 2;
				if
				:: s0 < n1 && G[s0] == ff -> s = s0
				:: else ->
					if
					:: s0 + 1 < n1 && G[s0 + 1] == ff -> s = s0 + 1
					:: else -> s = NONE
					fi
				fi;
				assert(s != NONE);       /* LAB_NONE: corrupt_array() */
				atomic { claimed++; n1 = 0; s0 = 0 };
				remove_slot(s);
				atomic { i++; s = 0 }
			fi
		:: else -> break
		od;
		if
		:: ok -> assert(claimed == 2)           /* claimed != K: corrupt_array() */
		:: else ->                              /* abort: re-insert what we took */
			i = 0;
			do
			:: i < 2 ->
				ff = first + i;
				if
				:: rec[ff] == BUSY(me) ->       /* ld_relaxed(rec[f]) == busy_rec */
					PROBE_AT(12) insert_locked(ff)  /* lab_pool_insert_locked(f) */
				:: else
				fi;
				i++
			:: else -> break
			od
		fi
	:: else
	fi;
	atomic { i = 0; ff = 0; claimed = 0; v = 0 }
}

/* ---- alloc.c lab_alloc(order 1): allocn (one probe: block [first, first+2),
 * chosen by the caller), then the commit of TAIL and ALLOC records. ------- */
inline lab_alloc1()
{
#ifdef TEARDOWN
	if
	:: ostate[OWN(me)] == O_ACTIVE -> ok = 1
	:: else -> ok = 0
	fi;
	if :: ok ->
#endif
	lock_get();                                     /* lock_get(&p->lock) */
	if
	:: n < 2 -> ok = 0                              /* n < K: LAB_ENOMEM */
	:: else -> claim_locked()                       /* lab_pool_claim_locked(first, 1) */
	fi;
	lock_put();                                     /* lock_put(&p->lock) */
	if
	:: ok ->
		rec[first + 1] = TAIL1(OWN(me));        /* st_relaxed(rec[f+1], TAIL) */
#ifdef TEARDOWN
		rec[first] = ALLOC1(OWN(me));           /* st_release(rec[f], head) */
		atomic {                                /* owner state re-check */
			if
			:: ostate[OWN(me)] == O_ACTIVE ->
				assert(holder[first] == 0 && holder[first + 1] == 0);
				assert(!dirty[first] && !dirty[first + 1]);
				holder[first] = me + 1; holder[first + 1] = me + 1;
				hblk[first] = 1; hblk[first + 1] = 1;
				dirty[first] = 1; dirty[first + 1] = 1;
				ok = 0
			:: else -> ok = 1
			fi
		};
		if
		:: ok ->
			atomic {                        /* CAS(rec[f], head, busy) */
				if
				:: rec[first] == ALLOC1(OWN(me)) -> rec[first] = BUSY(me); ok = 1
				:: else -> ok = 0
				fi
			};
			if
			:: ok ->
				rec[first + 1] = BUSY(me);       /* tails BUSY */
				lock_get();              /* give_back, K = 2: insert each */
				insert_locked(first);
				lock_put();
				lock_get();
				ff = first + 1;
				insert_locked(ff);
				lock_put()
			:: else
			fi
		:: else
		fi;
#else
		atomic {                                /* st_release(rec[f], head); LAB_OK */
			rec[first] = ALLOC1(OWN(me));
			assert(holder[first] == 0 && holder[first + 1] == 0);
			assert(!dirty[first] && !dirty[first + 1]);
			holder[first] = me + 1; holder[first + 1] = me + 1;
			hblk[first] = 1; hblk[first + 1] = 1;
			dirty[first] = 1; dirty[first + 1] = 1
		}
#endif
	:: else
	fi;
#ifdef TEARDOWN
	:: else
	fi;
#endif
	atomic { ok = 0; first = 0 }
}

/* ---- alloc.c lab_free(owner, first, order 1): classify the head, CAS head
 * ALLOC -> BUSY, then check the tail (head BUSY and ours) and make it BUSY,
 * free_commit under the pool lock.
 * legit: the caller holds the block; else the hostile (double) free. ------ */
inline lab_free1(legit)
{
#ifdef TEARDOWN
	if                                              /* live_owner(): ACTIVE */
	:: ostate[OWN(me)] == O_ACTIVE -> ok = 1
	:: else -> ok = 0
	fi;
	if :: ok ->
#endif
	v = rec[first];                                 /* v = ld_acquire(&z->rec[f]) */
	if
	:: v == ALLOC1(OWN(me)) ->                      /* classify() == LAB_OK */
#ifdef MUTANT_TAIL_BEFORE_CAS
		/* MUTANT (the old lab_free): the tail check BEFORE the commit CAS,
		 * where a racing winner legitimately changes the tails */
		assert(rec[first + 1] == TAIL1(OWN(me)));
#endif
		atomic {                                /* CAS(rec[f], v, busy) */
			if
			:: rec[first] == v ->
#ifdef ONE_OWNER
				assert(holder[first] != 0 && holder[first + 1] == holder[first]);
#else
				assert(holder[first] == me + 1 && holder[first + 1] == me + 1);
#endif
				assert(hblk[first] && hblk[first + 1]);
				holder[first] = 0; holder[first + 1] = 0;
				hblk[first] = 0; hblk[first + 1] = 0;
				rec[first] = BUSY(me); ok = 1
			:: else -> ok = 0                       /* lost the race: refused */
			fi
		}
	:: else -> ok = 0                               /* classify: refused */
	fi;
	if
	:: ok ->
#ifndef ONE_OWNER
		assert(legit);                          /* a hostile free is never accepted */
#endif
#ifndef MUTANT_TAIL_BEFORE_CAS
		/* for i < K, after the CAS ("only the head's holder changes the
		 * tails"): ld_relaxed(&z->rec[f + i]) != want (TAIL(order, owner)):
		 * lab_plat_panic("labyrinth: corrupt block tail") */
		assert(rec[first + 1] == TAIL1(OWN(me)));
#endif
		rec[first + 1] = BUSY(me);              /* st_relaxed(rec[f+i], BUSY) */
		lock_get();                             /* free_commit: K > 1, under the lock */
		atomic { dirty[first] = 0; dirty[first + 1] = 0 };  /* lab_scrub_frames(f, K) */
		insert_locked(first);                   /* lab_pool_insert_locked(f + 0, u) */
		ff = first + 1;
		insert_locked(ff);                      /* lab_pool_insert_locked(f + 1, u) */
		lock_put()
	:: else ->
#if !defined(TEARDOWN) && !defined(ONE_OWNER)
		assert(!legit)                          /* our own block: cannot be refused */
#else
		skip                                    /* reclaim or a racing free took it */
#endif
	fi;
#ifdef TEARDOWN
	:: else
	fi;
#endif
	atomic { ok = 0; v = 0; first = 0; ff = 0 }
}
#endif /* CLAIM */

/* frame f is held by this CPU as an order-0 frame */
#define MINE0(f) (holder[f] == me + 1 && !hblk[f])
/* the block at first (0 or 2) is held by this CPU */
#define MINE1(b) (holder[b] == me + 1 && hblk[b])

/* first = a block this CPU holds (guard: blocks if none) */
inline pick_mine1()
{
	if
	:: MINE1(0) -> first = 0
#if NF > 3
	:: MINE1(2) -> first = 2
#endif
	fi
}

inline pick_mine0(fr)
{
	if
	:: MINE0(0) -> fr = 0
	:: MINE0(1) -> fr = 1
	:: MINE0(2) -> fr = 2
#if NF > 3
	:: MINE0(3) -> fr = 3
#endif
	fi
}

/* ---- one CPU: OPS calls of the public API, then it frees all it holds --- */
proctype cpu(byte me)
{
	byte f, g, x, v, w, n1, n2, r, s, s0, y, t, k, j, op, old, os, cn;
	bit ok, legit;
	byte out[2];
	byte kind;      /* the call chosen: 1 lab_free order 0, 2 order 1 */
#ifdef CLAIM
	byte first, ff, i, claimed;
#endif
#ifdef DEFERRED
	byte rc;
#endif
#ifdef REMOVAL
	byte gs;        /* cpu->gen_seen */
#endif

	/* Each round chooses one call of the public API; the frees are expanded
	 * once, below the choice (kind, legit).  After its OPS calls the CPU
	 * frees what it still holds, then stops. */
	do
	::
#ifdef REMOVAL
	   ctx_enter();                                 /* every call: lab_ctx_enter (the
	                                                   round that ends the loop: a later call) */
#endif
	   if
	   :: op < (me == 0 -> OPS0 : OPS1) ->
		op++;
		if
		:: lab_alloc0()                         /* lab_alloc(owner, 0) */
		:: atomic { pick_mine0(f) } ->          /* lab_free(owner, f, 0), f ours */
			atomic { kind = 1; legit = 1 }
		:: atomic {                             /* hostile: lab_free(owner, f, 0) of a */
			if                              /* frame this CPU does not hold */
			:: holder[0] != me + 1 -> f = 0
			:: holder[1] != me + 1 -> f = 1
			:: holder[2] != me + 1 -> f = 2
#if NF > 3
			:: holder[3] != me + 1 -> f = 3
#endif
			fi } ->
			atomic { kind = 1; legit = 0 }
		:: pcp[me].cnt > 0 ->                   /* spill from the ring's head: */
			if
			:: pcp_spill(pcp[me].cnt)       /* lab_cpu_drain / lab_pcp_drain: all */
			:: pcp[me].cnt > 1 -> pcp_spill(1)  /* part of it, as lab_free_insert's
			                                   spill-first does (pcp_batch frames) */
			fi
#ifdef CLAIM
		:: atomic {                             /* lab_alloc(owner, 1): the probe's */
			if                              /* random aligned block is [first, first+2) */
			:: first = 0
#if NF > 3
			:: first = 2
#endif
			fi } ->
			lab_alloc1()
		:: atomic { pick_mine1() } ->           /* lab_free(owner, first, 1), ours */
			atomic { kind = 2; legit = 1 }
		:: atomic {                             /* hostile: lab_free(.., 1) of a block not ours */
			if
			:: !MINE1(0) -> first = 0
#if NF > 3
			:: !MINE1(2) -> first = 2
#endif
			fi } ->
			atomic { kind = 2; legit = 0 }
#endif
#ifdef DEFERRED
		:: rc = me;                             /* lab_scrub(): own ring first */
			do
			:: scrub_ring(rc);
				if :: rc == me -> rc = 1 - me :: else -> break fi
			od;
			rc = 0
#endif
		fi
	   :: else ->                                   /* done: free what is still held */
		if
		:: atomic { pick_mine0(f) } -> atomic { kind = 1; legit = 1 }
#ifdef CLAIM
		:: atomic { pick_mine1() } -> atomic { kind = 2; legit = 1 }
#endif
		:: else -> break
		fi
	   fi;
	   if
	   :: kind == 1 -> lab_free0(f, legit)
#ifdef CLAIM
	   :: kind == 2 -> lab_free1(legit)
#endif
	   :: else
	   fi;
	   atomic { kind = 0; legit = 0; f = 0 }
	od;
	done++
}

#ifdef TEARDOWN
/* ---- owner.c lab_owner_remove(owner 2), phases 0 and 1 (the pool is shared
 * with owner 1, so phase 2 only frees the owner; 3 and 4 do not run). ---- */
proctype remover()
{
	byte me = 2;
	byte f, v, n1, r, y, k, j, w, K, os;
	bit ok;
	byte out[2];

	ostate[2] = O_DYING;                            /* phase 0: st_release(&o->state, DYING);
	                                                   lab_plat_sync_cpus(): a full barrier on
	                                                   every CPU = SC here */
	f = 0;
	do                                              /* phase 1: reclaim(), cursor over frames */
	:: f < NF ->
		v = rec[f];                             /* v = ld_acquire(&z->rec[f]) */
		if
		:: v == ALLOC0(2) || v == ALLOC1(2) ->  /* ST_ALLOC, id == owner */
			K = (v == ALLOC1(2) -> 2 : 1);  /* K = 1 << rec_a(v) */
			atomic {                        /* CAS(rec[f], v, busy) */
				if
				:: rec[f] == v ->
					assert(holder[f] == 0 || holder[f] == 2);
					PROBE_IF(holder[f] == 2, 15)
					holder[f] = 0;
					if :: K == 2 -> assert(holder[f + 1] == 0 || holder[f + 1] == 2);
						holder[f + 1] = 0; hblk[f] = 0; hblk[f + 1] = 0
					:: else fi;
					rec[f] = BUSY(me); ok = 1
				:: else -> ok = 0       /* the owner freed it meanwhile */
				fi
			};
			if
			:: ok ->
				if :: K == 2 -> rec[f + 1] = BUSY(me) :: else fi;  /* tails BUSY */
				atomic { dirty[f] = 0; if :: K == 2 -> dirty[f + 1] = 0 :: else fi };
				                         /* lab_scrub_frames(f, K) */
				lock_get();              /* per frame: lock, insert_locked, unlock */
				insert_locked(f);
				lock_put();
				if
				:: K == 2 ->
					lock_get();
					j = f + 1;
					insert_locked(j);
					lock_put()
				:: else
				fi;
				f = f + K                /* o->cursor = f + K */
			:: else -> f++
			fi
		:: else -> f++
		fi
	:: else -> break
	od;
	done++
}
#endif

#ifdef REMOVAL
/* ---- owner.c remove_locked, phases 2 (the pool's death), 3 and 4, for the
 * pool's last owner: DYING and the gen bump, pool_home (retried: p->cursor
 * persists), pool_dissolve.  Phases 0-2's owner part is not modelled: the
 * owners stay ACTIVE, so the CPUs may still allocate and free (a superset of
 * C, where only calls already in flight may; their frees of held frames go
 * home under the lock).  pool_home's scrub of the dirty rings (no DEFERRED)
 * and drain of the remover's own pcp (it has none) do nothing here. ----- */
proctype remover()
{
	byte me = 2;
	byte v, n1, y, k, j, w, os, cur;
	bit ok, home, last;
	byte out[NF];

	pstate = P_DYING;                               /* atomic_store(&p->state, DYING, seq_cst) */
	gen++;                                          /* atomic_fetch_add(&z->gen, 1) */
	cur = 0;                                        /* p->cursor = 0 */
	do                                              /* phase 3: pool_home until it says home */
	:: last = (done == NCPU);                       /* (model: CPUs all stopped, last walk) */
		lock_get();                             /* lock_get(&p->lock, .., LOCK_WAIT) */
		do
		:: cur < NF ->
			v = rec[cur];                   /* atomic_load(rec_at(f), seq_cst) */
			if
			:: IS_INPOOL(v) -> cur++        /* p->cursor++ */
			:: else -> PROBE_IF(IS_BUSY(v), 25) break  /* goto out */
			fi
		:: else -> break
		od;
		atomic {
			home = (cur == NF);             /* home = p->cursor >= nr_frames */
			if
			:: home ->                      /* ghost: the walk saw every record INPOOL */
				assert(pcp[0].cnt == 0 && pcp[1].cnt == 0 && n == NF);
				homed = 1
			:: else
			fi
		};
		lock_put();                             /* out: lock_put */
		if
		:: home -> break
		:: !home && last -> break               /* a CPU stopped with frames cached:
		                                           C returns LAB_EAGAIN until it calls */
		:: !home && !last -> (rec[cur] != v || done == NCPU)  /* LAB_EAGAIN; retry
		                                           when it may differ */
		fi
	od;
	if
	:: home ->                                      /* phase 4: pool_dissolve */
		lock_get();                             /* lock_get(&p->lock) */
		pop_locked(NF);                         /* k = lab_pool_pop_locked(.., want) */
		j = 0;
		do
		:: j < k -> rec[out[j]] = R_UNAS; j++   /* st_release(rec, UNASSIGNED) */
		:: else -> break
		od;
		PROBE_AT(27) atomic {
			assert(k == NF && n == 0);      /* every frame of the pool dissolved */
			dissolved = 1
		};
		lock_put();                             /* empty = (n == 0); lock_put */
		pstate = P_FREE                         /* st_release(&p->state, POOL_FREE) */
	:: else
	fi;
	done++
}
#endif

/* ---- invariants, checked in every reachable state ----------------------
 * A never claim that asserts them after every step (cheaper than a monitor
 * process: it adds no states).  Expressions only, so one macro per frame f
 * and per slot s; && and || short-circuit as in C (no out-of-range index). */

/* number of times f sits in CPU c's pcp at a live index, and in any pcp */
#define INR(c, i, f) (pcp[c].cnt > (i) && pcp[c].e[i] == (f) -> 1 : 0)
#if RSZ > 3
#define NPCP_C(c, f) (INR(c, 0, f) + INR(c, 1, f) + INR(c, 2, f) + INR(c, 3, f))
#elif RSZ > 2
#define NPCP_C(c, f) (INR(c, 0, f) + INR(c, 1, f) + INR(c, 2, f))
#else
#define NPCP_C(c, f) (INR(c, 0, f) + INR(c, 1, f))
#endif
#define NPCP(f) (NPCP_C(0, f) + NPCP_C(1, f))

/* M1: a held frame has the record of its holder's owner (ALLOC order 0, or
 * ALLOC order 1 at the even head / TAIL at the odd tail of a block), is not
 * in G[0,n), not in a pcp */
#define M1(f) (holder[f] == 0 || \
	(rec[f] == (!hblk[f] -> ALLOC0(OWN(holder[f] - 1)) : \
	            ((f) % 2 == 0 -> ALLOC1(OWN(holder[f] - 1)) : TAIL1(OWN(holder[f] - 1)))) && \
	 !INLIVE(f) && NPCP(f) == 0))
/* M2: a frame is at most once in all pcps (live indices); there it is
 * unheld, not in G[0,n), not in transit, clean, and has record PCP, or
 * BUSY(c) while CPU c's exchange holds it in c's own ring (ring case, between
 * its CAS and the store that replaces it by f) */
#define XHELD(c, f) (xg[c] == (f) + 1 && NPCP_C(c, f) == 1 && rec[f] == BUSY(c))
#define M2(f) (NPCP(f) == 0 || \
	(NPCP(f) == 1 && holder[f] == 0 && !INLIVE(f) && !dirty[f] && !tr[f] && \
	 (rec[f] == R_PCP || XHELD(0, f) || XHELD(1, f))))
/* M5: a frame whose record is PCP is in exactly one pcp ring at a live index,
 * or in transit out of one (tr: popped by alloc or a spill, its record not yet
 * rewritten): no PCP frame is lost (as a ring entry overwritten) or cached
 * twice; and no ring holds more than pcp_max entries */
#define M5(f) (rec[f] != R_PCP || NPCP(f) == 1 || tr[f])
#define M5C (pcp[0].cnt <= PCP_MAX && pcp[1].cnt <= PCP_MAX)
/* M4: INPOOL and PCP records only on clean frames (shared pool: G is zero) */
#define M4(f) (!(IS_INPOOL(rec[f]) || rec[f] == R_PCP) || !dirty[f])
/* M3 (pool lock free): an INPOOL(p) record names a frame at 2p or 2p+1 < n */
#define M3R(f) (plock != 0 || !IS_INPOOL(rec[f]) || \
	(2 * rec[f] < n && G[2 * rec[f]] == (f)) || \
	(2 * rec[f] + 1 < n && G[2 * rec[f] + 1] == (f)))
/* M3 (pool lock free): live slot s names a frame with record INPOOL(s/2) or
 * BUSY (an exchanger or claimer holds it) */
#define M3S(s) (plock != 0 || (s) >= n || rec[G[s]] == INPOOL((s) / 2) || IS_BUSY(rec[G[s]]))
/* M3 (pool lock free): live slots are distinct */
#if NF > 3
#define M3D (plock != 0 || ((n < 2 || G[0] != G[1]) && (n < 3 || (G[0] != G[2] && G[1] != G[2])) && \
	(n < 4 || (G[0] != G[3] && G[1] != G[3] && G[2] != G[3]))))
#else
#define M3D (plock != 0 || ((n < 2 || G[0] != G[1]) && (n < 3 || (G[0] != G[2] && G[1] != G[2]))))
#endif

/* M6 (REMOVAL): once the walk found every frame home, no frame goes to a
 * pcp or a holder (refills and exchanges see DYING); once dissolved, every
 * frame is UNASSIGNED and G and the pcps are empty */
#ifdef REMOVAL
#define M6(f) ((!homed || (holder[f] == 0 && NPCP(f) == 0 && !tr[f] && rec[f] != R_PCP)) && \
	(!dissolved || (rec[f] == R_UNAS && n == 0)))
#endif

#ifndef NOCLAIM  /* -DNOCLAIM: the run that checks invalid end states */
never {
	do
	:: d_step {
		assert(!ready || (M1(0) && M1(1) && M1(2)));
		assert(!ready || (M2(0) && M2(1) && M2(2)));
		assert(!ready || (M3R(0) && M3R(1) && M3R(2)));
		assert(!ready || (M3S(0) && M3S(1) && M3S(2)));
		assert(!ready || M3D);
		assert(!ready || (M4(0) && M4(1) && M4(2)));
		assert(!ready || (M5(0) && M5(1) && M5(2) && M5C));
#if NF > 3
		assert(!ready || (M1(3) && M2(3) && M3R(3) && M3S(3) && M4(3) && M5(3)));
#endif
#ifdef REMOVAL
		assert(M6(0) && M6(1) && M6(2));
# if NF > 3
		assert(M6(3));
# endif
#endif
	   }
	od
}
#endif

/* ---- no deadlock: when nothing can move any more (timeout), every worker
 * must have finished.  This is spin's invalid-end-state check, which a never
 * claim switches off; a wait that never ends (lock_occupant on a frame nobody
 * will release, a lock never put) blocks its process until everything else
 * has stopped, and lands here. -------------------------------------------- */
active proctype watchdog()
{
	timeout -> assert(done == NPROC)
}

/* ---- the end: all processes finished and freed what they held ---------- */
active proctype final_check()
{
	byte f, s, c, e, cnt;
	done == NPROC;
#ifdef REMOVAL
	if
	:: dissolved ->                                 /* every frame dissolved once */
		d_step {
			assert(plock == 0 && n == 0 && pcp[0].cnt == 0 && pcp[1].cnt == 0);
			assert(pstate == P_FREE);
			f = 0;
			do
			:: f < NF -> assert(rec[f] == R_UNAS && holder[f] == 0 && !tr[f]); f++
			:: else -> break
			od
		}
	:: else ->
#endif
	d_step {
		assert(plock == 0);
#ifdef DEFERRED
		assert(dlock[0] == 0 && dlock[1] == 0);
		assert(n + pcp[0].cnt + pcp[1].cnt + dring[0].cnt + dring[1].cnt == NF);
#else
		assert(n + pcp[0].cnt + pcp[1].cnt == NF);
#endif
		f = 0;
		do
		:: f < NF ->
			assert(holder[f] == 0 && !tr[f]);
			cnt = 0;
			s = 0;
			do
			:: s < n -> if :: G[s] == f -> cnt++; assert(rec[f] == INPOOL(s / 2)) :: else fi; s++
			:: else -> break
			od;
			c = 0;
			do
			:: c < NCPU ->
				e = 0;
				do
				:: e < pcp[c].cnt -> if :: pcp[c].e[e] == f -> cnt++; assert(rec[f] == R_PCP) :: else fi; e++
				:: else -> break
				od;
#ifdef DEFERRED
				if :: dring[c].cnt > 0 && dring[c].e[0] == f -> cnt++; assert(rec[f] >= DIRTY(0)) :: else fi;
#endif
				c++
			:: else -> break
			od;
			assert(cnt == 1);                       /* G[0,n) + pcps: a permutation */
			f++
		:: else -> break
		od
	}
#ifdef REMOVAL
	fi
#endif
}

init
{
	byte f;
	d_step {                                        /* lab_pool_build: G = frames, records */
		f = 0;
		do
		:: f < NF -> G[f] = f; rec[f] = INPOOL(f / 2); f++
		:: else -> break
		od;
		ostate[1] = O_ACTIVE; ostate[2] = O_ACTIVE;
		f = 0;
		ready = 1
	};
	atomic {
		run cpu(0);
		run cpu(1);
#if defined(TEARDOWN) || defined(REMOVAL)
		run remover()
#endif
	}
}
