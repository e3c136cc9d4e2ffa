-- name: DeleteImage :execrows
DELETE FROM images WHERE id = $1::bigint;
