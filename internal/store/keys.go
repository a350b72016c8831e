package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Key is a virtual API key as stored: never the key itself, only its hash.
type Key struct {
	ID     string
	Name   string
	Team   string
	Models []string // empty: every model
	// Hash is the hex SHA-256 of the key.
	Hash string
	// Prefix is the first characters of the key, shown in listings so a
	// person can tell keys apart.
	Prefix    string
	Admin     bool
	CreatedAt time.Time
	ExpiresAt time.Time // zero: never
	RevokedAt time.Time // zero: not revoked
}

// CreateKey stores k.
func (s *Store) CreateKey(ctx context.Context, k *Key) error {
	_, err := s.db.ExecContext(ctx, s.rebind(`INSERT INTO api_keys
		(id, name, team, models, hash, prefix, admin, created_at, expires_at, revoked_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 0)`),
		k.ID, k.Name, k.Team, strings.Join(k.Models, ","), k.Hash, k.Prefix, k.Admin, millis(k.CreatedAt), millis(k.ExpiresAt))
	if err != nil {
		return fmt.Errorf("create key %s: %w", k.Name, err)
	}
	return nil
}

const keyColumns = `id, name, team, models, hash, prefix, admin, created_at, expires_at, revoked_at`

func scanKey(row interface{ Scan(...any) error }) (*Key, error) {
	var k Key
	var models string
	var created, expires, revoked int64
	if err := row.Scan(&k.ID, &k.Name, &k.Team, &models, &k.Hash, &k.Prefix, &k.Admin, &created, &expires, &revoked); err != nil {
		return nil, err
	}
	if models != "" {
		k.Models = strings.Split(models, ",")
	}
	k.CreatedAt, k.ExpiresAt, k.RevokedAt = fromMillis(created), fromMillis(expires), fromMillis(revoked)
	return &k, nil
}

// KeyByHash returns the key whose hash is hash, revoked or not.
func (s *Store) KeyByHash(ctx context.Context, hash string) (*Key, error) {
	k, err := scanKey(s.db.QueryRowContext(ctx, s.rebind(`SELECT `+keyColumns+` FROM api_keys WHERE hash = ?`), hash))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("look up key: %w", err)
	}
	return k, nil
}

// ListKeys returns every key, oldest first.
func (s *Store) ListKeys(ctx context.Context) ([]*Key, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+keyColumns+` FROM api_keys ORDER BY created_at, id`)
	if err != nil {
		return nil, fmt.Errorf("list keys: %w", err)
	}
	defer rows.Close()
	var out []*Key
	for rows.Next() {
		k, err := scanKey(rows)
		if err != nil {
			return nil, fmt.Errorf("list keys: %w", err)
		}
		out = append(out, k)
	}
	return out, rows.Err()
}

// RevokeKey marks the key with id or name revoked at now.
func (s *Store) RevokeKey(ctx context.Context, idOrName string, now time.Time) error {
	res, err := s.db.ExecContext(ctx, s.rebind(`UPDATE api_keys SET revoked_at = ? WHERE (id = ? OR name = ?) AND revoked_at = 0`),
		millis(now), idOrName, idOrName)
	if err != nil {
		return fmt.Errorf("revoke key %s: %w", idOrName, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("revoke key %s: %w", idOrName, ErrNotFound)
	}
	return nil
}

// CountKeys returns how many keys exist, revoked ones included.
func (s *Store) CountKeys(ctx context.Context) (int, error) {
	var n int
	if err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM api_keys`).Scan(&n); err != nil {
		return 0, fmt.Errorf("count keys: %w", err)
	}
	return n, nil
}
