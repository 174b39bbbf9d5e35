"""DuckDB's side of bench/query.sh: each query on the hub's clear export, timed (median of
three), its peak RSS, its result as CSV for the harness to compare. Usage:
python query_duckdb.py WORK  (reads WORK/queries.json and WORK/export/<TABLE>/*.parquet)."""
import csv, json, os, sys, time
import duckdb

work = sys.argv[1]
queries = json.load(open(os.path.join(work, "queries.json")))
con = duckdb.connect()
con.execute("SET threads TO 2")
for t in ["IR_BEN_R", "ER_PRS_F", "ER_PHA_F", "T_MCO_B"]:
    con.execute(f"CREATE VIEW {t} AS SELECT * FROM read_parquet('{work}/export/{t}/*.parquet')")
os.makedirs(os.path.join(work, "duckdb"), exist_ok=True)


def peak_kib():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


for name, sql in sorted(queries.items()):
    times, peak = [], 0
    for _ in range(3):
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        t = time.perf_counter()
        cur = con.execute(sql)
        rows = cur.fetchall()
        times.append(time.perf_counter() - t)
        peak = max(peak, peak_kib())
    cols = [d[0] for d in cur.description]
    with open(os.path.join(work, "duckdb", f"{name}.csv"), "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(cols)
        for r in rows:
            w.writerow(["" if v is None else v for v in r])
    times.sort()
    print(json.dumps({"query": name, "duckdb_s": times[1], "duckdb_peak_kib": peak, "rows": len(rows)}))
