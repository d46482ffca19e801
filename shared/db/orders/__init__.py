"""SQL of the orders table, one module per use:

- `locks`: `LockedOrder`, the one row type every decision on an order is made on, locked `FOR UPDATE`;
- `submission`: a placed order's way upstream (claims, the "about to send" mark, answers, stale attempts,
  parking and the operator's resubmit);
- `progress`: status polling of bought orders;
- `cancels`: cancel requests, their forwarding upstream, and the end of an order that is canceled;
- `reads`: what `status`, the admin CLI and the operator's parked-order commands read.

Placement is in `shared.db.placement` (one statement with the accounts and the outbox); refills in
`shared.db.refills`; money (refunds, captures) in `shared.db.accounts`.

Every function runs inside the caller's transaction unless it says otherwise (the claims and marks that must
be committed before an upstream call say so). Lock order, everywhere: order rows (by id), then account rows
(by id). The api's placement locks accounts only, its cancel an order then its account; the worker locks the
orders of a batch in id order, then (paying refunds) their accounts: no room for a deadlock cycle.
The api's queries are scoped to the caller's account, so an id of another account reads exactly like a
missing one.
"""
