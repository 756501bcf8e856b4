/*
 * The commit protocol of every state-changing session (keygen, refresh, rotate, import,
 * lifecycle transitions), for ONE key version, n = 3: nodes 1 and 2 honest, node 3 malicious.
 * Design: ../../shared/design/sessions.md, "Commit certificates". How to run: model/README.md.
 *
 * Node i of the model is node i+1 of the cluster: index 0 and 1 are the honest nodes,
 * index 2 (M) is the malicious node 3.
 *
 * Variants (one model, chosen with -D at `spin -a` time):
 *   (none)           the protocol as specified; every property must hold.
 *   -DBARE_CLAIM     deliberately broken: a node promotes its staged result to committed when a
 *                    peer merely claims "I committed d" (no certificate), as node/epochs.ts
 *                    chooseEpoch did before issue 9. Spin must find a violation of can_sign.
 *   -DDROP_AFTER_VOTE deliberately broken: a restarted node drops its staged result even though it
 *                    already voted. Spin must find a violation of can_sign.
 *   -DMAXCRASH=k     bound on the total number of honest crashes (default 3).
 */

#ifndef MAXCRASH
#define MAXCRASH 3
#endif

/* Two sessions for the same key version: S1 and, after S1 failed or was dropped at a node, a
 * retry S2. The honest result of session s is digest s ("all honest nodes that get there compute
 * the same d"); a retry computes a different result (fresh DKG randomness), so two digests exist
 * and "two honest nodes committed different results" is a reachable question, not a tautology. */
#define NSESS 2
#define RESULT(s) (s)

/* Persisted state of one key version at one node: none -> staged(d) -> committed(d, cert);
 * staged -> dropped. */
#define NONE      0
#define STAGED    1
#define COMMITTED 2
#define DROPPED   3

#define M 2                       /* index of the malicious node (node 3) */

/* ---- persisted at each honest node (survives a crash) ---- */
byte st[2];                       /* NONE | STAGED | COMMITTED | DROPPED */
byte sess[2];                     /* the session st belongs to: 0 (none yet), 1, 2 */
byte dig[2];                      /* staged or committed result digest, 0 if none */
bool voted[2];                    /* "I released my vote for dig in session sess" (step 2; "released" in the code) */
bool hascert[2];                  /* committed together with a certificate (all n votes) */

/* ---- the world: votes that honest nodes have sent. A vote is signed and unforgeable, so once
 * it has left its node anyone (the relay, node 3) may hold it and deliver it at any later time;
 * and nobody can make one that was not sent. VOTE(i,s) = digest node i voted for in s, or 0. ---- */
byte vote[6];
#define VOTE(i,s) vote[(i)*3+(s)]

/* ---- the world: attestations "I staged d in s" (signed, ML-DSA-65 in the implementation) that honest
 * nodes have sent. Like a vote, once sent anyone may deliver it at any later time, and nobody can make
 * one that was not sent. ATT(i,s) = digest node i attested it staged in s, or 0. An honest node
 * attests right after staging; here the attestation exists from the staging step on (any later
 * delivery time is the network's choice). Node 3 attests whatever it likes, so its attestation is
 * always available and not modelled. ---- */
byte att[6];
#define ATT(i,s) att[(i)*3+(s)]

/* ---- volatile at each honest node (lost on a crash) ---- */
bool up[2] = 1;                   /* running (not crashed) */
bool inrun[2];                    /* in the rounds of session sess (secret round state held) */
byte hv[6];                       /* HV(i,j): digest of the vote from node j that i holds for sess[i] */
#define HV(i,j) hv[(i)*3+(j)]
byte certS[2];                    /* a certificate in i's inbox: session ... */
byte certD[2];                    /* ... and digest (only valid certificates reach here: an invalid one
                                   * is a relay fault and is dropped by the receiver) */
#ifdef BARE_CLAIM
byte claimS[2];                   /* a bare claim "I committed d in s" in i's inbox */
byte claimD[2];
#endif

byte crashes;                     /* honest crashes so far (bounded by MAXCRASH) */

/* A certificate for (s, d): valid votes for d in s from all n nodes. Node 3 can always add its
 * own vote, so it exists as soon as both honest nodes have sent a vote for d in s. */
#define CERT_POSSIBLE(s,d) (VOTE(0,s) == (d) && VOTE(1,s) == (d))

/* ================================ properties ================================ */

/* (a) agree: no reachable state where the two honest nodes committed different results for the
 * key version. */
#define split (st[0] == COMMITTED && st[1] == COMMITTED && dig[0] != dig[1])

/* (b) can_sign: honest nodes sign with their committed state only, so nodes 1 and 2 can sign with
 * each other iff they committed the same thing (both nothing, or both d). A difference is
 * harmless only while it can be closed: "stuck" is a state in which
 *   - one honest node a has committed d, and the other b has not committed d, AND
 *   - no certificate exists that brings b forward: either a holds no certificate for d (it
 *     committed without one), or b no longer has d staged for that session (it dropped it, or
 *     it is in another session, or it committed something else), so even the certificate
 *     could not make b commit d. (A certificate held only by node 3 does not count: node 3
 *     may withhold it forever.) */
#define ahead(a,b)        (st[a] == COMMITTED && !(st[b] == COMMITTED && dig[b] == dig[a]))
#define can_catch_up(b,a) (hascert[a] && st[b] == STAGED && sess[b] == sess[a] && dig[b] == dig[a])
#define stuck             ((ahead(0,1) && !can_catch_up(1,0)) || (ahead(1,0) && !can_catch_up(0,1)))

/* (c) reaches: a commit (which, in the protocol, is always certificate-backed) eventually reaches
 * the other honest node. Crashes are bounded and restarting is a step of the node, so under weak
 * fairness every crashed node comes back; handing the certificate over is a step of the node
 * that holds it. Check with `pan -a -f -N reaches`. */
#define c0 (st[0] == COMMITTED)
#define c1 (st[1] == COMMITTED)
#define same (dig[0] == dig[1])

ltl agree    { [] !split }
ltl can_sign { [] !stuck }
ltl reaches  { [] (c0 -> <> (c1 && same)) && [] (c1 -> <> (c0 && same)) }

/* Reachability checks: each of these MUST FAIL (spin finds a run that reaches the state). They
 * show that the properties above are not true for an empty reason: both nodes do commit, a
 * retry session does commit, and a node can be ahead of the other while it catches up. */
ltl reach_both_commit  { [] !(c0 && c1) }
ltl reach_retry_commit { [] !(c0 && c1 && dig[0] == RESULT(2)) }
ltl reach_behind       { [] !(ahead(0,1) && hascert[0] && !up[1]) }

/* ================================ honest nodes ================================ */

/* Every option of the loop is one step of the node, atomic with its persistence; a crash is
 * possible between any two of them (it is itself an option). */
active [2] proctype Honest()
{
	byte i = _pid;            /* 0 or 1 */
	byte p = 1 - _pid;        /* the honest peer */
end:
	do
	/* Crash at any step: volatile state and messages in flight to the node are lost. */
	:: d_step { up[i] && crashes < MAXCRASH ->
		up[i] = 0; inrun[i] = 0; crashes++;
		HV(i,0) = 0; HV(i,1) = 0; HV(i,M) = 0;
		certS[i] = 0; certD[i] = 0;
#ifdef BARE_CLAIM
		claimS[i] = 0; claimD[i] = 0;
#endif
	   }

	/* Restart. Nothing is dropped automatically: a staged result (with its stored, unreleased
	 * vote) stays until repair releases or drops it (the steps below; neither needs the rounds).
	 * A node that released its vote keeps its staged result until a certificate arrives. */
	:: d_step { !up[i] ->
		up[i] = 1;
#ifdef DROP_AFTER_VOTE
		if
		:: st[i] == STAGED && voted[i] -> st[i] = DROPPED   /* BROKEN: drops a voted result */
		:: else -> skip
		fi
#else
		skip
#endif
	   }

	/* Join the next session for this key version: only when nothing is staged or committed
	 * (a voted, staged result blocks the key version until its certificate arrives). */
	:: d_step { up[i] && !inrun[i] && (st[i] == NONE || st[i] == DROPPED) && sess[i] < NSESS ->
		sess[i]++; st[i] = NONE; dig[i] = 0; voted[i] = 0; inrun[i] = 1;
		HV(i,0) = 0; HV(i,1) = 0; HV(i,M) = 0
	   }

	/* End of the rounds, either way: node 3 can make any honest node fail (e.g. a bad message to
	 * it only): it fails before staging ... */
	:: d_step { up[i] && inrun[i] && st[i] == NONE -> inrun[i] = 0 }
	/* ... or it computes the session's result d and (1) stages it together with its (unreleased)
	 * vote, one synced write, and attests "I staged d in S" to every peer. */
	:: d_step { up[i] && inrun[i] && st[i] == NONE -> st[i] = STAGED; dig[i] = RESULT(sess[i]);
		if
		:: ATT(i, sess[i]) == 0 -> ATT(i, sess[i]) = dig[i]
		:: else -> skip
		fi
	   }

	/* (2) release: persist "released" (= `voted` here), only once it holds every node's
	 * attestation that it staged the same d in S: the honest peer's (node 3's it can always get).
	 * In the session, or later by repair (so the rounds need not be running). */
	:: d_step { up[i] && st[i] == STAGED && !voted[i] && ATT(p, sess[i]) == dig[i] -> voted[i] = 1 }

	/* (3) send the vote to every peer. Also after a restart: a vote is idempotent. */
	:: d_step { up[i] && st[i] == STAGED && voted[i] && VOTE(i, sess[i]) == 0 ->
		VOTE(i, sess[i]) = dig[i]
	   }

	/* Drop rule: a node that has NOT released its vote may drop its staged result (and refuses to
	 * release for that session ever after: DROPPED has no release step). The implementation drops
	 * only by repair, and only where the vote was never released and some node never staged; node
	 * 3 can always claim it never staged, so this unconditional drop of an unreleased result is
	 * exactly what a malicious node 3 can make repair do. */
	:: d_step { up[i] && st[i] == STAGED && !voted[i] -> st[i] = DROPPED; inrun[i] = 0 }

	/* Receive the honest peer's vote for my session (it may come late, via anyone). */
	:: d_step { up[i] && st[i] == STAGED && HV(i,p) == 0 && VOTE(p, sess[i]) != 0 ->
		HV(i,p) = VOTE(p, sess[i])
	   }

	/* Commit: valid votes for the same d from ALL n nodes (my own, the peer's, node 3's) are the
	 * certificate; it is stored with the committed state. */
	:: d_step { up[i] && st[i] == STAGED && voted[i] && HV(i,p) == dig[i] && HV(i,M) == dig[i] ->
		st[i] = COMMITTED; hascert[i] = 1; inrun[i] = 0
	   }

	/* Receive a (valid) certificate: commit it if it is for the digest I staged in that
	 * session; anything else is ignored. */
	:: d_step { up[i] && certS[i] != 0 ->
		if
		:: st[i] == STAGED && sess[i] == certS[i] && dig[i] == certD[i] ->
			st[i] = COMMITTED; hascert[i] = 1; inrun[i] = 0
		:: else -> skip
		fi;
		certS[i] = 0; certD[i] = 0
	   }

#ifdef BARE_CLAIM
	/* BROKEN: promote the staged result on a peer's bare claim "I committed d". */
	:: d_step { up[i] && claimS[i] != 0 ->
		if
		:: st[i] == STAGED && sess[i] == claimS[i] && dig[i] == claimD[i] ->
			st[i] = COMMITTED; inrun[i] = 0
		:: else -> skip
		fi;
		claimS[i] = 0; claimD[i] = 0
	   }
#endif
	od
}

/* ================================ the malicious node 3 ================================ */

/* Node 3 sends any message to anyone at any time, or nothing. It cannot forge honest votes: it
 * can only forward the ones that were sent (VOTE). Messages to a crashed node are lost. */

/* a vote for digest d under its own identity to node i (different votes to different nodes,
 * or a changed vote later: all allowed) */
#define MVOTE(i,d)  :: d_step { up[i] && HV(i,M) != (d) -> HV(i,M) = (d) }
/* a certificate for (s, d) handed to node i, if one can exist */
#define MCERT(i,s)  :: d_step { up[i] && certS[i] == 0 && CERT_POSSIBLE(s, VOTE(0,s)) && VOTE(0,s) != 0 -> \
                                certS[i] = s; certD[i] = VOTE(0,s) }
/* a bare claim "I committed d in session s" to node i */
#define MCLAIM(i,s,d) :: d_step { up[i] && claimS[i] == 0 -> claimS[i] = s; claimD[i] = d }

active proctype Malicious()
{
end:
	do
	MVOTE(0,1)
	MVOTE(0,2)
	MVOTE(1,1)
	MVOTE(1,2)
	MCERT(0,1)
	MCERT(0,2)
	MCERT(1,1)
	MCERT(1,2)
#ifdef BARE_CLAIM
	MCLAIM(0,1,1)
	MCLAIM(0,1,2)
	MCLAIM(0,2,1)
	MCLAIM(0,2,2)
	MCLAIM(1,1,1)
	MCLAIM(1,1,2)
	MCLAIM(1,2,1)
	MCLAIM(1,2,2)
#endif
	od
}

/* ================================ certificate handover ================================ */

/* Node i hands its certificate to the honest peer: right after committing ("then sends the
 * certificate to every peer"), and at any later time (the channel hello of a later session, via
 * the coordinator, `repair`). Only when the peer is up and has not committed it (it says so in
 * its hello).
 *
 * This is its own process, not an option of Honest, on purpose: spin's weak fairness is per
 * process, and node 3 can keep an honest node busy forever (a stream of useless certificates or
 * votes for it to look at). The implementation must not let that starve the handover either:
 * it runs on every hello and every repair, whatever else arrives. */
active [2] proctype Handover()
{
	byte i = _pid - 3;        /* Honest are pids 0 and 1, Malicious 2 */
	byte p = 1 - i;
end:
	do
	:: d_step { up[i] && st[i] == COMMITTED && hascert[i] && up[p] && st[p] != COMMITTED && certS[p] == 0 ->
		certS[p] = sess[i]; certD[p] = dig[i]
	   }
	od
}
