package main

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/rollout-apiserver/rollout-apiserver/pkg/apis/rollout/v1beta1"
)

// The bench reads a protobuf list page's metadata without decoding its items, and counts
// the items by decoding them.
func TestProtobufListPage(t *testing.T) {
	list := &v1beta1.RolloutList{
		TypeMeta: metav1.TypeMeta{APIVersion: "rollout.kruise.io/v1beta1", Kind: "RolloutList"},
		ListMeta: metav1.ListMeta{ResourceVersion: "42", Continue: "next-page"},
		Items:    []v1beta1.Rollout{{ObjectMeta: metav1.ObjectMeta{Name: "a"}}, {ObjectMeta: metav1.ObjectMeta{Name: "b"}}},
	}
	var buf bytes.Buffer
	require.NoError(t, protobufInfo.Serializer.Encode(list, &buf))
	pb := protobufTarget(&target{key: "ours"})
	m, err := pb.listMeta(buf.Bytes())
	require.NoError(t, err)
	assert.Equal(t, listMeta{ResourceVersion: "42", Continue: "next-page"}, m)
	n, err := pb.countItems(buf.Bytes())
	require.NoError(t, err)
	assert.Equal(t, 2, n)
	_, err = pb.listMeta([]byte(`{"metadata":{}}`))
	assert.Error(t, err, "a JSON body is not protobuf")
}
