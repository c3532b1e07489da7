#!/usr/bin/env python3
"""Independent oracle for the points specification (shared/spec/points.md, §1-§4).

Written from the spec alone, without reading points/src, so that it does not share
the engine's readings.  Exact decimals only (decimal.Decimal, 60 digits), no floats.

    python3 tools/points_oracle.py --rules BUNDLE.json|.toml --basket BASKET.json

prints the quote JSON of spec §4 and exits 0, or prints the refusal to stderr and
exits 2.  Used by tools/points_fuzz.py as the reference implementation.

Readings taken where the spec leaves room (each is checked by the fuzzer only
where the spec is unambiguous):
  * decimals must be JSON strings of the form [+-]?digits[.digits];
  * a rule's `stop` is judged on its points after its own cap (step 4), before the
    group step; a stop rule that then loses its `best` group still stops later rules;
  * a group's cap is shared out in both `sum` and `best` groups;
  * a member listing a program absent from the bundle is ignored;
  * `earned_today` may be any integer (§3.7 applied as written);
  * a leap second `:60` lies after `:59` and before the next minute;
  * no bounds beyond the spec's: any number of decimal places / fraction digits,
    any magnitude (the engine documents its own bounds in points/src/lib.rs
    `limits`; points_fuzz.py stays inside them, so its disagreements are real).
"""
import argparse
import datetime as _dt
import decimal
import json
import re
import sys
from decimal import Decimal

CTX = decimal.Context(prec=60, rounding=decimal.ROUND_HALF_EVEN,
                      traps=[decimal.InvalidOperation, decimal.DivisionByZero, decimal.Overflow])
decimal.setcontext(CTX)

DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
KINDS = {"multiplier", "per_unit", "per_item", "fixed"}
MODES = {"sum", "best"}
ROUNDINGS = {"floor", "ceil", "half_up", "half_even"}
DEC_RE = re.compile(r"^[+-]?[0-9]+(\.[0-9]+)?$")
ID_RE = re.compile(r"^[a-z0-9_-]{1,64}$")
DT_RE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})$")
HM_RE = re.compile(r"^(\d{2}):(\d{2})$")
RFC3339_RE = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")
DATE_RE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")


class Invalid(Exception):
    """A refusal; the message names the offending field."""


# ---------------------------------------------------------------- helpers

def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _fields(obj, allowed, where):
    if not isinstance(obj, dict):
        raise Invalid(f"{where}: expected an object")
    for k in obj:
        if k not in allowed:
            raise Invalid(f"{where}.{k}: unknown field")


def _dec(v, where, lo=None, lo_strict=False):
    if not isinstance(v, str) or not DEC_RE.match(v):
        raise Invalid(f"{where}: not a decimal string: {v!r}")
    d = Decimal(v)
    if lo is not None and (d < lo or (lo_strict and d == lo)):
        raise Invalid(f"{where}: out of range: {v}")
    return d


def _int(v, where, lo=None):
    if not _is_int(v):
        raise Invalid(f"{where}: not an integer")
    if lo is not None and v < lo:
        raise Invalid(f"{where}: out of range: {v}")
    return v


def _bool(v, where):
    if not isinstance(v, bool):
        raise Invalid(f"{where}: not a boolean")
    return v


def _str(v, where):
    if not isinstance(v, str):
        raise Invalid(f"{where}: not a string")
    return v


def _strlist(v, where):
    if not isinstance(v, list):
        raise Invalid(f"{where}: not a list")
    return [_str(x, f"{where}[{i}]") for i, x in enumerate(v)]


def _local_dt(s, where):
    m = DT_RE.match(s) if isinstance(s, str) else None
    if not m:
        raise Invalid(f"{where}: not YYYY-MM-DDTHH:MM:SS")
    try:
        return _dt.datetime(*map(int, m.groups()))
    except ValueError:
        raise Invalid(f"{where}: not a date-time")


def _hm(s, where):
    m = HM_RE.match(s) if isinstance(s, str) else None
    if not m:
        raise Invalid(f"{where}: not HH:MM")
    h, mi = map(int, m.groups())
    if h > 23 or mi > 59:
        raise Invalid(f"{where}: not HH:MM")
    return h * 60 + mi


def round_mode(x, mode):
    r = {"floor": decimal.ROUND_FLOOR, "ceil": decimal.ROUND_CEILING,
         "half_up": decimal.ROUND_HALF_UP, "half_even": decimal.ROUND_HALF_EVEN}[mode]
    return int(x.quantize(Decimal(1), rounding=r))


# ---------------------------------------------------------------- bundle (§1)

def parse_bundle(b):
    _fields(b, {"version", "programs"}, "bundle")
    if "version" not in b:
        raise Invalid("version: required")
    version = _int(b["version"], "version")
    progs_raw = b.get("programs", [])
    if not isinstance(progs_raw, list):
        raise Invalid("programs: not a list")
    programs, seen = [], set()
    for pi, p in enumerate(progs_raw):
        w = f"programs[{pi}]"
        _fields(p, {"id", "currency", "base_rate", "rounding", "exclude_categories",
                    "earn_on_redeemed", "tiers", "groups", "rules", "limits", "redeem"}, w)
        if "id" not in p:
            raise Invalid(f"{w}.id: required")
        pid = _str(p["id"], f"{w}.id")
        if not ID_RE.match(pid):
            raise Invalid(f"{w}.id: invalid program id {pid!r}")
        if pid in seen:
            raise Invalid(f"program {pid}: id repeats")
        seen.add(pid)
        w = f"program {pid}"
        if "currency" not in p:
            raise Invalid(f"{w}: currency required")
        cur = _str(p["currency"], f"{w}: currency")
        if not re.match(r"^[A-Z]{3}$", cur):
            raise Invalid(f"{w}: currency invalid")
        if "base_rate" not in p:
            raise Invalid(f"{w}: base_rate required")
        prog = {"id": pid, "base_rate": _dec(p["base_rate"], f"{w}: base_rate", Decimal(0))}
        rounding = p.get("rounding", "floor")
        if not isinstance(rounding, str) or rounding not in ROUNDINGS:
            raise Invalid(f"{w}: rounding unknown {rounding!r}")
        prog["rounding"] = rounding
        prog["exclude"] = set(_strlist(p.get("exclude_categories", []), f"{w}: exclude_categories"))
        prog["earn_on_redeemed"] = _bool(p.get("earn_on_redeemed", False), f"{w}: earn_on_redeemed")
        tiers = {}
        tl = p.get("tiers", [])
        if not isinstance(tl, list):
            raise Invalid(f"{w}: tiers not a list")
        for ti, t in enumerate(tl):
            _fields(t, {"id", "multiplier"}, f"{w}: tiers[{ti}]")
            if "id" not in t or "multiplier" not in t:
                raise Invalid(f"{w}: tiers[{ti}] id/multiplier required")
            tid = _str(t["id"], f"{w}: tiers[{ti}].id")
            if tid in tiers:
                raise Invalid(f"{w}: tier {tid}: id repeats")
            tiers[tid] = _dec(t["multiplier"], f"{w}: tier {tid}: multiplier", Decimal(1))
        prog["tiers"] = tiers
        groups = {}
        gl = p.get("groups", [])
        if not isinstance(gl, list):
            raise Invalid(f"{w}: groups not a list")
        for gi, g in enumerate(gl):
            _fields(g, {"id", "mode", "cap"}, f"{w}: groups[{gi}]")
            if "id" not in g:
                raise Invalid(f"{w}: groups[{gi}].id required")
            gid = _str(g["id"], f"{w}: groups[{gi}].id")
            if gid in groups:
                raise Invalid(f"{w}: group {gid}: id repeats")
            if "mode" not in g:
                raise Invalid(f"{w}: group {gid}: mode required")
            if not isinstance(g["mode"], str) or g["mode"] not in MODES:
                raise Invalid(f"{w}: group {gid}: mode unknown")
            cap = _int(g["cap"], f"{w}: group {gid}: cap", 0) if "cap" in g else None
            groups[gid] = {"mode": g["mode"], "cap": cap}
        prog["groups"] = groups
        rules, rseen = [], set()
        rl = p.get("rules", [])
        if not isinstance(rl, list):
            raise Invalid(f"{w}: rules not a list")
        for ri, r in enumerate(rl):
            rules.append(_parse_rule(r, f"{w}: rules[{ri}]", w, rseen, tiers, groups))
        prog["rules"] = rules
        lim = p.get("limits", {})
        _fields(lim, {"sale_cap", "member_daily_cap"}, f"{w}: limits")
        prog["sale_cap"] = _int(lim["sale_cap"], f"{w}: limits.sale_cap", 0) if "sale_cap" in lim else None
        prog["daily_cap"] = (_int(lim["member_daily_cap"], f"{w}: limits.member_daily_cap", 0)
                             if "member_daily_cap" in lim else None)
        if "redeem" in p:
            rd = p["redeem"]
            _fields(rd, {"points_per_unit", "min_points", "step", "max_share", "offline_allowance"},
                    f"{w}: redeem")
        programs.append(prog)
    return {"version": version, "programs": programs}


def _parse_rule(r, w0, wprog, rseen, tiers, groups):
    _fields(r, {"id", "priority", "group", "kind", "value", "match", "when", "min_spend",
                "tiers", "birthday", "cap", "stop"}, w0)
    if "id" not in r:
        raise Invalid(f"{w0}.id required")
    rid = _str(r["id"], f"{w0}.id")
    if rid in rseen:
        raise Invalid(f"{wprog}: rule {rid}: id repeats")
    rseen.add(rid)
    w = f"{wprog}: rule {rid}"
    rule = {"id": rid, "priority": _int(r.get("priority", 0), f"{w}: priority")}
    g = r.get("group")
    if g is not None:
        _str(g, f"{w}: group")
        if g not in groups:
            raise Invalid(f"{w}: group {g!r} undeclared")
    rule["group"] = g
    if "kind" not in r:
        raise Invalid(f"{w}: kind required")
    if not isinstance(r["kind"], str) or r["kind"] not in KINDS:
        raise Invalid(f"{w}: kind unknown")
    rule["kind"] = r["kind"]
    if "value" not in r:
        raise Invalid(f"{w}: value required")
    rule["value"] = _dec(r["value"], f"{w}: value",
                         Decimal(1) if r["kind"] == "multiplier" else Decimal(0))
    m = r.get("match", {})
    _fields(m, {"categories", "skus"}, f"{w}: match")
    rule["cats"] = set(_strlist(m.get("categories", []), f"{w}: match.categories"))
    rule["skus"] = set(_strlist(m.get("skus", []), f"{w}: match.skus"))
    wh = r.get("when", {})
    _fields(wh, {"from", "to", "days", "hours"}, f"{w}: when")
    rule["from"] = _local_dt(wh["from"], f"{w}: when.from") if "from" in wh else None
    rule["to"] = _local_dt(wh["to"], f"{w}: when.to") if "to" in wh else None
    if rule["from"] is not None and rule["to"] is not None and rule["from"] >= rule["to"]:
        raise Invalid(f"{w}: when.from >= when.to")
    if "days" in wh:
        days = _strlist(wh["days"], f"{w}: when.days")
        for d in days:
            if d not in DAYS:
                raise Invalid(f"{w}: when.days: unknown day {d!r}")
        rule["days"] = {DAYS.index(d) for d in days}
    else:
        rule["days"] = None
    if "hours" in wh:
        h = wh["hours"]
        _fields(h, {"start", "end"}, f"{w}: when.hours")
        if "start" not in h or "end" not in h:
            raise Invalid(f"{w}: when.hours start/end required")
        s, e = _hm(h["start"], f"{w}: when.hours.start"), _hm(h["end"], f"{w}: when.hours.end")
        if s >= e:
            raise Invalid(f"{w}: when.hours start >= end")
        rule["hours"] = (s, e)
    else:
        rule["hours"] = None
    rule["min_spend"] = _dec(r["min_spend"], f"{w}: min_spend", Decimal(0)) if "min_spend" in r else None
    rt = _strlist(r.get("tiers", []), f"{w}: tiers")
    for t in rt:
        if t not in tiers:
            raise Invalid(f"{w}: tier {t!r} undeclared")
    rule["tiers"] = set(rt) if rt else None
    rule["birthday"] = _bool(r.get("birthday", False), f"{w}: birthday")
    rule["cap"] = _int(r["cap"], f"{w}: cap", 0) if "cap" in r else None
    rule["stop"] = _bool(r.get("stop", False), f"{w}: stop")
    return rule


# ---------------------------------------------------------------- basket (§2)

def parse_basket(k):
    _fields(k, {"sale_id", "time", "member", "earned_today", "paid_with_points", "lines"}, "basket")
    sale_id = k.get("sale_id")
    if sale_id is not None:
        _str(sale_id, "sale_id")
    if "time" not in k:
        raise Invalid("time: required")
    m = RFC3339_RE.match(k["time"]) if isinstance(k["time"], str) else None
    if not m:
        raise Invalid("time: not RFC 3339 with offset")
    y, mo, d, hh, mi, ss, frac, off = m.groups()
    try:
        date = _dt.date(int(y), int(mo), int(d))
    except ValueError:
        raise Invalid("time: not a date")
    if int(hh) > 23 or int(mi) > 59 or int(ss) > 60:
        raise Invalid("time: not a time")
    if off not in ("Z", "z") and (int(off[1:3]) > 23 or int(off[4:6]) > 59):
        raise Invalid("time: bad offset")
    # local wall clock as written; fractional seconds kept exactly
    secs = Decimal(int(hh) * 3600 + int(mi) * 60 + int(ss)) + (Decimal("0" + frac) if frac else 0)
    if int(ss) == 60:  # RFC 3339 leap second: after :59 of that minute, before the next minute
        secs = Decimal(int(hh) * 3600 + int(mi) * 60 + 59) + (Decimal(1) + (Decimal("0" + frac) if frac else 0)) / 2
    time = {"date": date, "secs": secs}
    member = None
    if k.get("member") is not None:
        mm = k["member"]
        _fields(mm, {"id", "birthday", "programs"}, "member")
        if "id" not in mm:
            raise Invalid("member.id: required")
        mid = _str(mm["id"], "member.id")
        bmonth = None
        if mm.get("birthday") is not None:
            bm = DATE_RE.match(mm["birthday"]) if isinstance(mm["birthday"], str) else None
            if not bm:
                raise Invalid("member.birthday: not YYYY-MM-DD")
            try:
                bmonth = _dt.date(*map(int, bm.groups())).month
            except ValueError:
                raise Invalid("member.birthday: not a date")
        progs = {}
        mp = mm.get("programs", {})
        if not isinstance(mp, dict):
            raise Invalid("member.programs: not an object")
        for pid, pv in mp.items():
            pv = {} if pv is None else pv
            _fields(pv, {"tier"}, f"member.programs.{pid}")
            t = pv.get("tier")
            if t is not None:
                _str(t, f"member.programs.{pid}.tier")
            progs[pid] = t
        member = {"id": mid, "bmonth": bmonth, "programs": progs}
    et = k.get("earned_today", {})
    if not isinstance(et, dict):
        raise Invalid("earned_today: not an object")
    # no range is given for earned_today; the §3.7 formula is applied as written
    earned = {pid: _int(v, f"earned_today.{pid}") for pid, v in et.items()}
    pwp = _dec(k["paid_with_points"], "paid_with_points", Decimal(0)) if "paid_with_points" in k else Decimal(0)
    ll = k.get("lines", [])
    if not isinstance(ll, list):
        raise Invalid("lines: not a list")
    lines, seen = [], set()
    for i, l in enumerate(ll):
        w = f"lines[{i}]"
        _fields(l, {"line", "sku", "category", "qty", "unit_price", "discount"}, w)
        no = _int(l["line"], f"{w}.line") if "line" in l else i + 1
        if no in seen:
            raise Invalid(f"{w}.line: {no} repeats")
        seen.add(no)
        if "sku" not in l:
            raise Invalid(f"{w}.sku: required")
        sku = _str(l["sku"], f"{w}.sku")
        cat = l.get("category")
        if cat is not None:
            _str(cat, f"{w}.category")
        if "qty" not in l:
            raise Invalid(f"{w}.qty: required")
        qty = _dec(l["qty"], f"{w}.qty", Decimal(0), lo_strict=True)
        if "unit_price" not in l:
            raise Invalid(f"{w}.unit_price: required")
        up = _dec(l["unit_price"], f"{w}.unit_price", Decimal(0))
        disc = _dec(l["discount"], f"{w}.discount", Decimal(0)) if "discount" in l else Decimal(0)
        amount = qty * up - disc
        if amount < 0:
            raise Invalid(f"{w}: amount (qty x unit_price - discount) is negative")
        lines.append({"line": no, "sku": sku, "cat": cat, "qty": qty, "amount": amount})
    return {"sale_id": sale_id, "time": time, "member": member, "earned": earned,
            "pwp": pwp, "lines": lines}


# ---------------------------------------------------------------- evaluation (§3)

def _when_ok(rule, t):
    date, secs = t["date"], t["secs"]
    if rule["from"] is not None or rule["to"] is not None:
        # compare (date, seconds-of-day) lexicographically, exact
        key = (date, secs)
        if rule["from"] is not None:
            f = rule["from"]
            if key < (f.date(), Decimal(f.hour * 3600 + f.minute * 60 + f.second)):
                return False
        if rule["to"] is not None:
            e = rule["to"]
            if not key < (e.date(), Decimal(e.hour * 3600 + e.minute * 60 + e.second)):
                return False
    if rule["days"] is not None and date.weekday() not in rule["days"]:
        return False
    if rule["hours"] is not None:
        s, e = rule["hours"]
        if not (Decimal(s * 60) <= secs < Decimal(e * 60)):
            return False
    return True


def eval_program(prog, bk, tier, bmonth, earned_today, trace=None):
    rnd = lambda x: round_mode(x, prog["rounding"])
    elig = [l for l in bk["lines"] if l["cat"] is None or l["cat"] not in prog["exclude"]]
    E = sum((l["amount"] for l in elig), Decimal(0))
    E_base = E if prog["earn_on_redeemed"] else max(Decimal(0), E - bk["pwp"])
    base_exact = E_base * prog["base_rate"]
    base = rnd(base_exact)
    m = prog["tiers"].get(tier, Decimal(1)) if tier is not None else Decimal(1)
    if tier is not None and tier not in prog["tiers"]:
        tier = None  # undeclared tier counts as no tier
    tier_bonus = rnd(base_exact * (m - 1))

    order = sorted(prog["rules"], key=lambda r: (r["priority"], r["id"].encode()))
    applied = []  # dicts: rule, points, capped
    for r in order:
        if r["cats"] or r["skus"]:
            matched = [l for l in elig if (l["cat"] is not None and l["cat"] in r["cats"])
                       or l["sku"] in r["skus"]]
        else:
            matched = list(elig)
        if not matched:
            continue
        if not _when_ok(r, bk["time"]):
            continue
        if r["tiers"] is not None and (tier is None or tier not in r["tiers"]):
            continue
        if r["birthday"] and (bmonth is None or bmonth != bk["time"]["date"].month):
            continue
        M = sum((l["amount"] for l in matched), Decimal(0))
        if r["min_spend"] is not None and M < r["min_spend"]:
            continue
        k, v = r["kind"], r["value"]
        if k == "multiplier":
            exact = M * prog["base_rate"] * (v - 1)
        elif k == "per_unit":
            exact = M * v
        elif k == "per_item":
            exact = sum((l["qty"] for l in matched), Decimal(0)) * v
        else:
            exact = v
        pts = rnd(exact)
        capped = False
        if r["cap"] is not None and pts > r["cap"]:
            pts, capped = r["cap"], True
        if trace is not None:
            trace.setdefault(prog["id"], {})[r["id"]] = {"raw": rnd(exact), "capped_pts": pts}
        applied.append({"rule": r, "points": pts, "capped": capped})
        if r["stop"] and pts > 0:
            break

    # groups (§3.5)
    best_winner = {}
    for a in applied:
        g = a["rule"]["group"]
        if g is not None and prog["groups"][g]["mode"] == "best":
            if g not in best_winner or a["points"] > best_winner[g]["points"]:
                best_winner[g] = a
    for a in applied:
        g = a["rule"]["group"]
        if g is not None and prog["groups"][g]["mode"] == "best" and best_winner[g] is not a:
            a["points"] = 0
    cap_left = {g: v["cap"] for g, v in prog["groups"].items() if v["cap"] is not None}
    for a in applied:
        g = a["rule"]["group"]
        if g is not None and g in cap_left:
            keep = min(a["points"], cap_left[g])
            if keep < a["points"]:
                a["capped"] = True
            a["points"] = keep
            cap_left[g] -= keep

    if trace is not None:
        for a in applied:
            trace[prog["id"]][a["rule"]["id"]]["final"] = a["points"]
    subtotal = base + tier_bonus + sum(a["points"] for a in applied)
    if trace is not None:
        trace.setdefault(prog["id"], {})["__subtotal__"] = subtotal
    total, limited = subtotal, []
    if prog["sale_cap"] is not None and total > prog["sale_cap"]:
        total = prog["sale_cap"]
        limited.append("sale_cap")
    if prog["daily_cap"] is not None:
        room = max(0, prog["daily_cap"] - earned_today)
        if total > room:
            total = room
            limited.append("member_daily_cap")
    return {"program": prog["id"], "base": base, "tier_bonus": tier_bonus,
            "rules": [{"id": a["rule"]["id"], "points": a["points"], "capped": a["capped"]}
                      for a in applied if a["points"] > 0],
            "subtotal": subtotal, "total": total, "limited_by": limited}


def quote(bundle, basket, trace=None):
    out = []
    mem = basket["member"]
    for prog in bundle["programs"]:
        if mem is None:
            tier, bmonth = None, None
        else:
            if prog["id"] not in mem["programs"]:
                continue
            tier, bmonth = mem["programs"][prog["id"]], mem["bmonth"]
        out.append(eval_program(prog, basket, tier, bmonth, basket["earned"].get(prog["id"], 0), trace))
    return {"rules_version": bundle["version"], "sale_id": basket["sale_id"],
            "member": mem["id"] if mem else None, "programs": out}


def load_bundle(path):
    if path.endswith(".toml"):
        import tomllib
        with open(path, "rb") as f:
            return tomllib.load(f)
    with open(path) as f:
        return json.load(f)


def run(rules_path, basket_path):
    """Returns (exit_code, stdout_obj_or_None, message)."""
    try:
        try:
            braw = load_bundle(rules_path)
        except Exception as e:  # noqa: BLE001
            raise Invalid(f"bundle: does not parse: {e}")
        bundle = parse_bundle(braw)
        try:
            with open(basket_path) as f:
                kraw = json.load(f)
        except Exception as e:  # noqa: BLE001
            raise Invalid(f"basket: does not parse: {e}")
        basket = parse_basket(kraw)
    except Invalid as e:
        return 2, None, str(e)
    return 0, quote(bundle, basket), ""


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rules", required=True)
    ap.add_argument("--basket", required=True)
    a = ap.parse_args()
    rc, obj, msg = run(a.rules, a.basket)
    if rc:
        print(msg, file=sys.stderr)
        sys.exit(rc)
    print(json.dumps(obj))


if __name__ == "__main__":
    main()
