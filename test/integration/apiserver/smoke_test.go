package apiserver

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/rollout-apiserver/rollout-apiserver/test/integration/framework"
)

func TestSmoke(t *testing.T) {
	s := framework.StartServer(t, "")
	list, err := s.Client.RolloutV1beta1().Rollouts("default").List(context.Background(), metav1.ListOptions{})
	require.NoError(t, err)
	require.Empty(t, list.Items)
}
