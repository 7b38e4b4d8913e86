package devstack

import (
	"context"

	"github.com/laneim/laneim/configs"
	"github.com/laneim/laneim/roles"
	"github.com/laneim/laneim/subjects"
)

// startCDC runs the CDC role in the stack when the metadata lives in MySQL: changes
// made in SQL reach the caches as they would in a cluster. It takes the lock like
// any `laneim cdc`, so a separate one run beside dev is a standby.
func (s *Stack) startCDC(ctx context.Context, cfg configs.Config) error {
	nc, err := s.connect("cdc", subjects.RoleCDC)
	if err != nil {
		return err
	}
	s.cdc, err = roles.StartCDC(ctx, cfg, nc, roles.CDCOptions{Redis: s.logic.Redis, Logger: s.log})
	if err != nil {
		return err
	}
	s.CDC = s.cdc.CDC
	return nil
}
