package route

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestOriginal: the first change of a release records the original, later ones
// keep it, and taking it back leaves the annotations as they were; an untyped
// original reads back with int64 whole numbers, as an informer decodes them.
func TestOriginal(t *testing.T) {
	spec := map[string]any{"weight": int64(100), "host": "web"}
	annotations, original, err := SaveOriginal(map[string]string{"note": "x"}, spec)
	require.NoError(t, err)
	assert.Equal(t, spec, original)
	assert.Contains(t, annotations, OriginalAnnotation)

	again, original, err := SaveOriginal(annotations, map[string]any{"weight": int64(5)})
	require.NoError(t, err)
	assert.Equal(t, annotations, again, "a recorded original is kept")
	assert.Equal(t, spec, original, "whole numbers read back as int64")

	rest, taken, ok, err := TakeOriginal[map[string]any](again)
	require.NoError(t, err)
	assert.True(t, ok)
	assert.Equal(t, spec, taken)
	assert.Equal(t, map[string]string{"note": "x"}, rest)

	rest, _, ok, err = TakeOriginal[map[string]any](map[string]string{OriginalAnnotation: "{"})
	require.Error(t, err)
	assert.False(t, ok)
	assert.Nil(t, rest)

	rest, _, ok, err = TakeOriginal[map[string]any](map[string]string{OriginalAnnotation: "{}"})
	require.NoError(t, err)
	assert.True(t, ok)
	assert.Nil(t, rest, "no annotations left is nil, as before the release")
}

func TestDiffers(t *testing.T) {
	same := func(a, b int) bool { return a == b }
	stored := func(v int, err error) func(context.Context, int) (int, error) {
		return func(context.Context, int) (int, error) { return v, err }
	}
	tests := []struct {
		name       string
		have, want int
		dryRun     func(context.Context, int) (int, error)
		differs    bool
	}{
		{"equal here: no dry run", 1, 1, nil, false},
		{"equal as stored", 1, 2, stored(1, nil), false},
		{"different as stored", 1, 2, stored(2, nil), true},
		{"dry run failed", 1, 2, stored(0, errors.New("refused")), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dryRun := tt.dryRun
			if dryRun == nil {
				dryRun = func(context.Context, int) (int, error) {
					t.Error("a dry run of an object that is equal already")
					return tt.want, nil
				}
			}
			assert.Equal(t, tt.differs, Differs(context.Background(), tt.have, tt.want, same, dryRun))
		})
	}
}
