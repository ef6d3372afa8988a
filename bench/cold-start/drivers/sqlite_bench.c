/* Cold-start corpus: a database. Builds an in-memory SQLite database from
 * generated rows, indexes it and runs aggregate/join/text queries; prints
 * one line per query so every runtime's output can be compared. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "sqlite3.h"

static unsigned long long rng = 0x9e3779b97f4a7c15ull;
static unsigned next_rand(void) {
    rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
    return (unsigned)(rng >> 16);
}

static void must(int rc, sqlite3 *db, const char *what) {
    if (rc != SQLITE_OK && rc != SQLITE_DONE && rc != SQLITE_ROW) {
        fprintf(stderr, "%s: %s\n", what, sqlite3_errmsg(db));
        exit(1);
    }
}

static void query(sqlite3 *db, const char *sql) {
    sqlite3_stmt *st;
    must(sqlite3_prepare_v2(db, sql, -1, &st, 0), db, sql);
    unsigned long long h = 1469598103934665603ull;
    long rows = 0;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        rows++;
        for (int c = 0; c < sqlite3_column_count(st); c++) {
            const unsigned char *t = sqlite3_column_text(st, c);
            for (; t && *t; t++) h = (h ^ *t) * 1099511628211ull;
            h = (h ^ '|') * 1099511628211ull;
        }
    }
    must(rc, db, sql);
    sqlite3_finalize(st);
    printf("rows=%ld hash=%016llx  %.50s\n", rows, h, sql);
}

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 50000;
    sqlite3 *db;
    must(sqlite3_open(":memory:", &db), db, "open");
    must(sqlite3_exec(db,
        "CREATE TABLE city(id INTEGER PRIMARY KEY, name TEXT, region INTEGER);"
        "CREATE TABLE person(id INTEGER PRIMARY KEY, name TEXT, age INTEGER,"
        " city INTEGER REFERENCES city(id), score REAL, note TEXT);", 0, 0, 0), db, "schema");
    must(sqlite3_exec(db, "BEGIN", 0, 0, 0), db, "begin");
    sqlite3_stmt *ins;
    must(sqlite3_prepare_v2(db, "INSERT INTO city VALUES(?,?,?)", -1, &ins, 0), db, "prep city");
    for (int i = 0; i < 500; i++) {
        char name[32];
        snprintf(name, sizeof name, "city-%03d-%c", i, 'a' + next_rand() % 26);
        sqlite3_bind_int(ins, 1, i);
        sqlite3_bind_text(ins, 2, name, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int(ins, 3, next_rand() % 12);
        must(sqlite3_step(ins), db, "ins city");
        sqlite3_reset(ins);
    }
    sqlite3_finalize(ins);
    static const char *syl[] = {"ka", "lo", "mi", "ne", "ru", "sa", "to", "vi", "ze", "qu"};
    must(sqlite3_prepare_v2(db, "INSERT INTO person VALUES(?,?,?,?,?,?)", -1, &ins, 0), db, "prep person");
    for (int i = 0; i < n; i++) {
        char name[32], note[96];
        int k = 2 + next_rand() % 3, p = 0;
        for (int j = 0; j < k; j++) p += snprintf(name + p, sizeof name - p, "%s", syl[next_rand() % 10]);
        snprintf(note, sizeof note, "note %u about %s in batch %d", next_rand() % 100000, name, i / 1000);
        sqlite3_bind_int(ins, 1, i);
        sqlite3_bind_text(ins, 2, name, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int(ins, 3, 18 + next_rand() % 70);
        sqlite3_bind_int(ins, 4, next_rand() % 500);
        sqlite3_bind_double(ins, 5, (next_rand() % 100000) / 100.0);
        sqlite3_bind_text(ins, 6, note, -1, SQLITE_TRANSIENT);
        must(sqlite3_step(ins), db, "ins person");
        sqlite3_reset(ins);
    }
    sqlite3_finalize(ins);
    must(sqlite3_exec(db, "COMMIT; CREATE INDEX person_city ON person(city);"
                          "CREATE INDEX person_name ON person(name, age);", 0, 0, 0), db, "index");
    query(db, "SELECT count(*), sum(age), printf('%.2f', avg(score)) FROM person");
    query(db, "SELECT c.region, count(*), max(p.age), printf('%.2f', sum(p.score)) FROM person p"
              " JOIN city c ON c.id = p.city GROUP BY c.region ORDER BY c.region");
    query(db, "SELECT name, count(*) AS k FROM person GROUP BY name ORDER BY k DESC, name LIMIT 20");
    query(db, "SELECT id, name, age FROM person WHERE note LIKE '%99 about ka%' ORDER BY id");
    query(db, "SELECT p.id, c.name FROM person p JOIN city c ON c.id = p.city"
              " WHERE p.age BETWEEN 30 AND 32 AND c.region = 3 ORDER BY p.score DESC LIMIT 50");
    query(db, "WITH RECURSIVE r(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM r WHERE x < 2000)"
              " SELECT sum(x * x) % 1000003, group_concat(x % 7, '') FROM r");
    query(db, "SELECT json_group_array(json_object('id', id, 'n', upper(name))) FROM"
              " (SELECT id, name FROM person WHERE id % 997 = 0)");
    query(db, "UPDATE person SET score = score * 1.5 WHERE age > 60 RETURNING id");
    query(db, "SELECT age, count(*), printf('%.3f', avg(score)) FROM person GROUP BY age ORDER BY age");
    sqlite3_close(db);
    return 0;
}
